# Copyright (c) mmreid_usl contributors. All rights reserved.
# Quick start: Cluster Contrast end to end on CPU with nothing to download.
# The synthetic pedestrian dataset (100 train / 50 test identities, 4 cameras)
# is generated on first use into ~/.cache/mmreid_usl (or $MMREID_USL_CACHE);
# a randomly initialised ResNet-18 (last stride 1) trains at 64x32 for
# 12 epochs x 40 iterations; test mAP is logged at initialisation and every
# 4 epochs.
_base_ = [
    '../_base_/models/cluster_contrast_r50.py',
    '../_base_/datasets/synthetic_usl.py',
    '../_base_/schedules/adam_50e_step20.py',
]

model = dict(
    encoder=dict(backbone=dict(depth=18, init_cfg=None)),
    bn_group_size=None)  # BN over the whole batch of 32 (one process)

# training from scratch tolerates a larger learning rate than fine-tuning
# ImageNet weights (3.5e-4 in the paper configs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='StepLR', step_size=10, gamma=0.1, by_epoch=True)]
train_cfg = dict(max_epochs=12, val_interval=4)
custom_hooks = [dict(type='ValBeforeTrainHook')]
# ~10 images per identity (Market has ~17): a smaller k-reciprocal
# neighbourhood and eps keep look-alike identities apart.
default_hooks = dict(
    logger=dict(interval=10),
    pseudo_label=dict(
        labeler=dict(
            distance=dict(k1=15, k2=6), clusterer=dict(eps=0.5))))
env_cfg = dict(cudnn_benchmark=False)
