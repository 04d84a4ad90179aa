# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP, ResNet-50, DukeMTMC-reID. The paper reports no Duke result; eps 0.7
# as the unofficial code's README (its reproduction, with its own 320x128
# two-stage recipe: README.md). `bash tools/dist_train.sh <this> 4`.
_base_ = [
    '../_base_/models/dcmip_r50.py',
    '../_base_/datasets/dukemtmc_reid_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]

default_hooks = dict(pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.7))))
