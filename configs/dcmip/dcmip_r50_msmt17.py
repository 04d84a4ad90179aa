# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP, ResNet-50, MSMT17 (the paper's row, README.md): 200 iterations per
# epoch (supplement C, for every dataset; the Cluster Contrast README uses 400
# on MSMT17), DBSCAN eps 0.7 (supplement Fig. 2). `bash tools/dist_train.sh
# <this> 4` (4 processes x 64 = 16 ids x 16).
_base_ = [
    '../_base_/models/dcmip_r50.py',
    '../_base_/datasets/msmt17_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]

train_dataloader = dict(sampler=dict(samples_per_epoch=200 * 64))
default_hooks = dict(pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.7))))
