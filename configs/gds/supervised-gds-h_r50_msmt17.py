# Copyright (c) mmreid_usl contributors. All rights reserved.
# GDS-H on fully supervised ReID (GDS supplement Sec. 7, Table 4; figures:
# README.md): source-pretrain_r50_msmt17.py plus the GDS loss with hard
# mining on the pooled feature, the true ids defining the pairs.
_base_ = ['./source-pretrain_r50_msmt17.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        old_weight=0.9,
        lambda_sigma=1.0,
        lambda_h=0.5,
        hard_mining='tails'))
