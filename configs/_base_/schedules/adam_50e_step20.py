# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast / DCMIP schedule (docs/algorithms/cluster_contrast.md):
# Adam 3.5e-4, wd 5e-4, StepLR x0.1 every 20 epochs, 50 epochs, no warm-up;
# evaluate every 10 epochs.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4))
param_scheduler = [
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=10)
# batch_size x GPUs of the official runs (DataParallel, 4 GPUs)
auto_scale_lr = dict(base_batch_size=256, enable=False)
