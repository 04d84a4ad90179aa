# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) as written in the paper where it differs from the code (§2.12):
# no label smoothing (Eq. 5), other-camera positives with one denominator per
# positive (Eq. 7), KL(P||Q) (Eq. 12).
_base_ = ['./ice_r50_market.py']

model = dict(
    agnostic_loss=dict(label_smoothing=0.0),
    camera_loss=dict(variant='paper'),
    consistency_loss=dict(direction='p_q'))
