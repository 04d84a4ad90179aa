# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS, DukeMTMC-reID -> Market-1501: theory_r50_duke2market.py
# plus the global distance-distributions separation loss L_GDS (lambda_sigma
# = 1) on the pooled feature; no hard mining. The exact form of L_GDS is
# reconstructed (GDSLoss docstring, docs/algorithms/gds.md).
_base_ = ['./theory_r50_duke2market.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        momentum=0.9,
        lambda_sigma=1.0,
        lambda_h=0.0,
        form='softplus',
        distance='cosine'))

# After every epoch: prove that all ranks hold the same parameters, buffers
# and GDS global statistics (Eq. 1-3 of the supplement), and log the latter.
custom_hooks = [
    dict(
        type='RankConsistencyHook',
        log_values=[
            'loss_gds.mean_pos', 'loss_gds.var_pos', 'loss_gds.mean_neg',
            'loss_gds.var_neg'
        ])
]
