# Copyright (c) mmreid_usl contributors. All rights reserved.
# ice_mbv2_cuhk03.py with the official schedule LENGTH: 40 epochs x 400
# iterations (40 re-clusterings), the official warm-up (linear from 0.1 over
# the first 10 epochs, then constant) and the official EMA alpha = 0.999
# (mmengine momentum 0.001: ~2.5 epochs of 400 iterations, the official
# horizon); data, input size, batch 32 and clustering as the CPU config. A
# GPU run (~30x the CPU budget), docs/benchmarks.md.
_base_ = ['./ice_mbv2_cuhk03.py']

model = dict(momentum=0.001)
train_dataloader = dict(sampler=dict(samples_per_epoch=400 * 32))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        begin=0,
        end=11,
        by_epoch=True),
]
train_cfg = dict(max_epochs=40, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
