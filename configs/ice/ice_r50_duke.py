# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware), ResNet-50, DukeMTMC-reID (eps 0.55 as in the official code).
# The paper's row: README.md.
_base_ = [
    '../_base_/models/ice_r50.py',
    '../_base_/datasets/dukemtmc_reid_ice.py',
    '../_base_/schedules/adam_40e_warmup10.py',
]
