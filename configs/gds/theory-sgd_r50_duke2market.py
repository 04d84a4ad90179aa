# Copyright (c) mmreid_usl contributors. All rights reserved.
# theory_r50_duke2market.py with the optimiser of Theory's official code
# (lsongx/DomainAdaptiveReID, selftraining.py + reid/trainers.py): SGD with
# momentum 0.9, lr 6e-5 (constant) and NO weight decay (the script has a
# --weight-decay flag but does not pass it to the optimiser). The code means
# to clamp every gradient to [-1, 1], but its `grad.data.clamp(-1., 1.)` is
# out of place and changes nothing; the clamp is kept here as the code
# intends it (at lr 6e-5 it rarely binds). `optim_wrapper.clip_grad=None`
# reproduces the code's effective behaviour exactly.
_base_ = ['./theory_r50_duke2market.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=6e-5, momentum=0.9, weight_decay=0.0),
    clip_grad=dict(type='value', clip_value=1.0))
