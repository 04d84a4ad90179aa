# Copyright (c) mmreid_usl contributors. All rights reserved.
# cluster-contrast_mbv2_cuhk03.py with the official schedule LENGTH: 50 epochs
# x 200 iterations (50 re-clusterings), Adam 3.5e-4 x0.1 every 20 epochs as
# the official code; data, input size, batch 64 and clustering as the CPU
# config. Too long for 2 CPU cores (~20x the CPU budget): a GPU run, to show
# where the method ends on this data (docs/benchmarks.md).
_base_ = ['./cluster-contrast_mbv2_cuhk03.py']

train_dataloader = dict(sampler=dict(samples_per_epoch=200 * 64))
param_scheduler = [
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True)
]
train_cfg = dict(max_epochs=50, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
