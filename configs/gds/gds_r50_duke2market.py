# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS, DukeMTMC-reID -> Market-1501: the data, schedule and
# stage-1 checkpoint of theory_r50_duke2market.py with the GDS model
# (_base_/models/gds_r50.py: L_GDS, lambda_sigma = 1, on the pooled feature;
# no hard mining; a RankConsistencyHook). The exact form of L_GDS is
# reconstructed (GDSLoss docstring, docs/algorithms/gds.md).
_base_ = [
    '../_base_/models/gds_r50.py',
    '../_base_/datasets/duke2market_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1, whose checkpoint this config adapts: --cfg-options
# stage1_checkpoint=CKPT (configs/gds/README.md)
stage1_config = 'configs/gds/source-pretrain_r50_duke.py'
default_hooks = dict(checkpoint=dict(interval=10))
