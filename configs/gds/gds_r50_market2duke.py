# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS, Market-1501 -> DukeMTMC-reID; see gds_r50_duke2market.py.
_base_ = ['./theory_r50_market2duke.py']

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
