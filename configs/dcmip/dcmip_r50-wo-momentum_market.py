# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Table 3, "DCMIP w/o f_theta_m" (Market-1501; figures:
# README.md): the instance proxies are filled and replaced with the
# encoder's (student's) features, and the student is deployed. The momentum
# encoder still exists (and is still evaluated as momentum/...) but no loss
# or proxy reads it.
_base_ = ['./dcmip_r50_market.py']

model = dict(
    instance_memory=dict(encoder='student'),
    mip_update_encoder='student',
    momentum_reinit='never',
    test_cfg=dict(encoder='student'))
