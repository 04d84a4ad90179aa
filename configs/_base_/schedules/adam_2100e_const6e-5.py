# Copyright (c) mmreid_usl contributors. All rights reserved.
# Adaptation stage of GDS (GDS supplement Sec. 3): Adam, lr 6e-5 kept
# constant (no scheduler), 30 re-clusterings x 70 epochs = 2,100 epochs
# (an epoch is #clusters x K samples, Theory's, set by the dataset base).
# The weight decay is not given for this stage: 0 as Theory's code (its SGD
# never receives one; selftraining.py). Theory's optimiser itself:
# configs/gds/theory-sgd_*.py.
# Evaluation: Theory evaluates the direct transfer before training and
# then ONCE, after the last iteration (selftraining.py); the number to
# report is that of the final checkpoint (epoch_2100.pth, `tools/test.py`),
# not the best of the periodic evaluations. The evaluation every 70 epochs
# (after each re-clustering period) is for monitoring only, and
# `save_best` keeps that checkpoint for convenience; selecting it would
# select on the target test split.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=6e-5, weight_decay=0.0))
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2100, val_interval=70)
auto_scale_lr = dict(base_batch_size=128, enable=False)
