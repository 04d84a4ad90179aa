# Copyright (c) mmreid_usl contributors. All rights reserved.
# Source pre-training of Theory / GDS (GDS supplement Sec. 3): Adam 3e-4,
# weight decay 5e-4, x0.1 every 50 epochs, 150 epochs; evaluate every 10.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4))
param_scheduler = [
    dict(type='StepLR', step_size=50, gamma=0.1, by_epoch=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=150, val_interval=10)
auto_scale_lr = dict(base_batch_size=128, enable=False)
