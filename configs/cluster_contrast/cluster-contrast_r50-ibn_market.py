# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, IBN-ResNet-50-a, Market-1501: the ResNet-50 config of the
# same dataset (cluster-contrast_r50_market.py) with the IBN backbone
# (_base_/models/cluster_contrast_r50-ibn.py). Paper figures:
# configs/cluster_contrast/README.md.
_base_ = [
    '../_base_/models/cluster_contrast_r50-ibn.py',
    '../_base_/datasets/market1501_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]
