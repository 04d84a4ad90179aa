# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS at CPU scale, CUHK03 cameras 3-10 -> 1-2:
# theory_mbv2_cuhk03-cam3to10-to-cam1to2.py plus L_GDS (lambda_sigma 1, no
# hard mining) on the pooled feature; the GDS settings as the ResNet-50
# configs (gds_r50_duke2market.py). beta = 0.9 averages over ~10
# iterations, about 1/6 to 1/9 of a re-clustering period here (3 epochs of
# #clusters x 4 samples, ~60-90 iterations).
_base_ = ['./theory_mbv2_cuhk03-cam3to10-to-cam1to2.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        old_weight=0.9,
        lambda_sigma=1.0,
        lambda_h=0.0,
        form='softplus',
        distance='cosine'))
