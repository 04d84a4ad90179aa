# Copyright (c) mmreid_usl contributors. All rights reserved.
# GDS (docs/algorithms/gds.md, configs/gds/README.md): the Theory adaptation
# model (theory_r50.py) plus the global distance-distributions separation
# loss L_GDS (lambda_sigma = 1, statistics averaged with beta = 0.9 =
# GDSLoss.old_weight, the weight of the OLD statistics) on the pooled feature;
# no hard mining (GDS-H: loss_gds.lambda_h=0.5, hard_mining='tails'). The
# exact form of L_GDS is reconstructed (GDSLoss docstring).
_base_ = ['./theory_r50.py']

model = dict(
    loss_gds=dict(
        _delete_=True,
        type='GDSLoss',
        old_weight=0.9,
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
