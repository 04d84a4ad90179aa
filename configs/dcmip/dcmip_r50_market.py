# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP, ResNet-50, Market-1501 (the paper's main row, README.md).
# `bash tools/dist_train.sh <this> 4`: 4 processes x 64 images (4 pseudo-ids x
# 16 instances) = batch 256 = 16 ids x 16 per step, as the paper's 4 GPUs;
# 200 iterations per epoch, 50 epochs, Adam 3.5e-4 / wd 5e-4, x0.1 every 20
# epochs; DBSCAN eps 0.45 (supplement Fig. 2). One GPU with the 4-GPU BN
# statistics: dcmip_r50_1xb256_market.py. The recipe lives in the bases: model,
# loop and hooks in _base_/models/dcmip_r50.py, data in
# _base_/datasets/market1501_usl.py (on _base_/recipes/usl_pk.py).
_base_ = [
    '../_base_/models/dcmip_r50.py',
    '../_base_/datasets/market1501_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]

default_hooks = dict(
    pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.45))))
