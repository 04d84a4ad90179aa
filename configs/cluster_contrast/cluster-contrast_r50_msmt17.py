# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, MSMT17 (official README: 256x128, eps 0.6,
# 400 iters/epoch; the paper says 224x224).
_base_ = [
    '../_base_/models/cluster_contrast_r50.py',
    '../_base_/datasets/msmt17_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]
