# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) as written in the paper where it differs from the code
# (docs/algorithms/ice.md): no label smoothing (Eq. 5), other-camera positives
# with one denominator per positive (Eq. 7), KL(P||Q) (Eq. 12).
_base_ = ['./ice_r50_market.py']

model = dict(
    loss_agnostic=dict(label_smoothing=0.0),
    loss_cross=dict(variant='paper', proxy_norm='cosine'),
    loss_s_ins=dict(direction='p_q'))
