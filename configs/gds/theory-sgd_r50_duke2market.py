# Copyright (c) mmreid_usl contributors. All rights reserved.
# theory_r50_duke2market.py with the optimiser of Theory's official code
# (lsongx/DomainAdaptiveReID, selftraining.py + reid/trainers.py): SGD with
# momentum 0.9, lr 6e-5 (constant) and NO weight decay (the script has a
# --weight-decay flag but does not pass it to the optimiser), and no
# gradient clipping: the trainer's `param.grad.data.clamp(-1., 1.)` is the
# out-of-place clamp, whose result is discarded, so the official code
# clamps nothing (`clip_grad=None`). Everything else is Theory's code as in
# theory_r50_duke2market.py (configs/gds/README.md).
_base_ = ['./theory_r50_duke2market.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=6e-5, momentum=0.9, weight_decay=0.0),
    clip_grad=None)
