# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS-H on the synthetic A -> B pair: theory_r18_synthetic-a2b.py
# plus L_GDS (lambda_sigma 1) and the hard mining L_H (lambda_h 0.5, tails
# mu +- 3 sigma) on the pooled feature, the settings of
# gds-h_r50_duke2market.py. beta = 0.9 averages over ~10 iterations, about
# half of a re-clustering period here (2 epochs of #clusters x 4 samples,
# ~25 iterations).
_base_ = ['./theory_r18_synthetic-a2b.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        old_weight=0.9,
        lambda_sigma=1.0,
        lambda_h=0.5,
        form='softplus',
        distance='cosine',
        hard_mining='tails',
        tail_k=3.0))
