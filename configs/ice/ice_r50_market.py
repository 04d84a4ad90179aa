# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware), ResNet-50, Market-1501: the paper's main row (README.md),
# official-code defaults. `bash tools/dist_train.sh <this> 4`: 4 GPUs x
# 8 images (2 pseudo-ids x 4 instances) = batch 32 = 8 ids x 4, 400 iters.
# The recipe lives in the bases: model, loop and hooks in
# _base_/models/ice_r50.py, the three-view pipeline and sampler in
# _base_/recipes/ice_3view.py (under _base_/datasets/market1501_ice.py).
_base_ = [
    '../_base_/models/ice_r50.py',
    '../_base_/datasets/market1501_ice.py',
    '../_base_/schedules/adam_40e_warmup10.py',
]
