# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, DukeMTMC-reID (official README settings).
_base_ = [
    '../_base_/models/cluster_contrast_r50.py',
    '../_base_/datasets/dukemtmc_reid_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]
