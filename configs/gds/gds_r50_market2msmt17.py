# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS, Market-1501 -> MSMT17; see gds_r50_duke2market.py.
_base_ = [
    '../_base_/models/gds_r50.py',
    '../_base_/datasets/market2msmt17_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1: tools/train.py configs/gds/source-pretrain_r50_market.py
load_from = 'work_dirs/source-pretrain_r50_market/epoch_150.pth'
default_hooks = dict(checkpoint=dict(interval=10))
