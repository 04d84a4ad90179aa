# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, Market-1501: official code defaults as run in
# its README (momentum update old_weight=0.1, eps 0.6, GeM, 200 iters/epoch,
# 4 GPUs x 64). The paper's variant: cluster-contrast_r50-paper_market.py.
_base_ = [
    '../_base_/models/cluster_contrast_r50.py',
    '../_base_/datasets/market1501_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]
