# Copyright (c) mmreid_usl contributors. All rights reserved.
# The Theory / GDS baseline, Market-1501 -> MSMT17;
# see theory_r50_duke2market.py.
_base_ = [
    '../_base_/models/theory_r50.py',
    '../_base_/datasets/market2msmt17_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1, whose checkpoint this config adapts: --cfg-options
# stage1_checkpoint=CKPT (configs/gds/README.md)
stage1_config = 'configs/gds/source-pretrain_r50_market.py'
default_hooks = dict(checkpoint=dict(interval=10))
