# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE schedule (docs/algorithms/ice.md): Adam 3.5e-4, wd 5e-4, linear warm-up
# from 0.1 over the first 10 epochs (stepped per epoch:
# lr(e) = 3.5e-4 * (0.1 + 0.9 e / 10)), then constant (no decay); 40 epochs;
# evaluate every epoch.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        begin=0,
        # mmengine's LinearLR reaches end_factor at step end-1: end=11 gives
        # exactly 0.1, 0.19, ..., 0.91 for epochs 0..9 and 1.0 from epoch 10
        end=11,
        by_epoch=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=1)
# 4 GPUs x 8 = 32 in the official runs
auto_scale_lr = dict(base_batch_size=32, enable=False)
