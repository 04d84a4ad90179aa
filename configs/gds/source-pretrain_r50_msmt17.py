# Copyright (c) mmreid_usl contributors. All rights reserved.
# Stage 1 of Theory / GDS on MSMT17 (train + val: 1,041 ids); see
# source-pretrain_r50_market.py.
_base_ = [
    '../_base_/models/supervised_r50.py',
    '../_base_/datasets/msmt17_gds-source.py',
    '../_base_/schedules/adam_150e_step50.py',
]

model = dict(num_classes=1041)
