# Copyright (c) mmreid_usl contributors. All rights reserved.
# theory_mbv2_cuhk03-cam3to10-to-cam1to2.py with the optimiser of Theory's
# official code, as theory-sgd_r50_duke2market.py: SGD, momentum 0.9, lr
# 6e-5 constant, no weight decay, no gradient clipping (the official clamp
# is out of place and clamps nothing). At this CPU budget (~1/100 of the
# paper's iterations) the weights move very little (configs/gds/README.md).
_base_ = ['./theory_mbv2_cuhk03-cam3to10-to-cam1to2.py']

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=6e-5, momentum=0.9, weight_decay=0.0),
    clip_grad=None)
