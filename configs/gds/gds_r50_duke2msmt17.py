# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS, DukeMTMC-reID -> MSMT17; see gds_r50_duke2market.py.
_base_ = ['./theory_r50_duke2msmt17.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        momentum=0.9,
        lambda_sigma=1.0,
        lambda_h=0.0,
        form='softplus',
        distance='cosine'))
