# Copyright (c) mmreid_usl contributors. All rights reserved.
# Adaptation stage of GDS (GDS supplement Sec. 3): Adam, lr 6e-5 kept
# constant (no scheduler), 30 re-clusterings x 70 epochs = 2,100 epochs,
# evaluated after every re-clustering period (70 epochs) as Theory does. The
# weight decay is not given for this stage; 5e-4 as in stage 1 (assumption).
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=6e-5, weight_decay=5e-4))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2100, val_interval=70)
auto_scale_lr = dict(base_batch_size=128, enable=False)
