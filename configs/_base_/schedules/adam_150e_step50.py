# Copyright (c) mmreid_usl contributors. All rights reserved.
# Source pre-training of Theory / GDS (GDS supplement Sec. 3): Adam 3e-4,
# weight decay 5e-4, x0.1 every 50 epochs, 150 epochs; evaluate every 10.
# The layers that are not ImageNet-pretrained (the embedding head and the
# classifier) train at 3x the lr, as Theory's source_train.py does
# (lr_mult 3.0 for every parameter outside its `base` ResNet); the GDS
# supplement gives the base lr only. Theory's own schedule (constant to
# epoch 100, then x0.001^((e-100)/50)) is not the GDS supplement's and is
# not used.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4),
    paramwise_cfg=dict(
        custom_keys={
            'encoder.neck': dict(lr_mult=3.0),
            'classifier': dict(lr_mult=3.0)
        }))
param_scheduler = [
    dict(type='StepLR', step_size=50, gamma=0.1, by_epoch=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=150, val_interval=10)
auto_scale_lr = dict(base_batch_size=128, enable=False)
