# Copyright (c) mmreid_usl contributors. All rights reserved.
# theory_r50_duke2market.py with the optimiser of Theory's official code
# (lsongx/DomainAdaptiveReID): SGD with momentum 0.9, lr 6e-5 (constant),
# every gradient clamped to [-1, 1]; weight decay 5e-4 (open-reid's default,
# not verified).
_base_ = ['./theory_r50_duke2market.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=6e-5, momentum=0.9, weight_decay=5e-4),
    clip_grad=dict(type='value', clip_value=1.0))
