# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware), ResNet-50, Market-1501: the paper's main row (82.3 mAP / 93.8
# R1), official-code defaults. `bash tools/dist_train.sh <this> 4`: 4 GPUs x
# 8 images (2 pseudo-ids x 4 instances) = batch 32 = 8 ids x 4, 400 iters.
_base_ = [
    '../_base_/models/ice_r50.py',
    '../_base_/datasets/market1501_usl.py',
    '../_base_/schedules/adam_40e_warmup10.py',
    '../_base_/pseudo_label/dbscan_jaccard.py',
]

# ICE augmentations (§0.7): "strong" = resize, pad 10 + random crop, flip,
# Gaussian blur (p=0.5, radius ~ U(0.1, 2.0)), random erasing p=0.6;
# "weak" = resize only. Each image yields strong1, weak, strong2.
img_scale = (128, 256)  # (w, h)
strong_pipeline = [
    dict(type='Resize', scale=img_scale, interpolation='bicubic'),
    dict(
        type='RandomCrop', crop_size=(img_scale[1], img_scale[0]), padding=10),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',  # radius uniform in [0.1, 2.0]
        prob=0.5),
    dict(type='ReIDRandomErasing', erase_prob=0.6),
]
weak_pipeline = [
    dict(type='Resize', scale=img_scale, interpolation='bicubic'),
]
train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='MultiView',
        transforms=[strong_pipeline, weak_pipeline, strong_pipeline]),
    dict(type='PackReIDInputs'),
]

# batch_size is per process: 4 GPUs x 8. MoreCameraSampler behaviour (§0.6):
# exactly K=4 per pseudo-id, one image per camera first.
batch_size = 8
iters_per_epoch = 400
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(
        num_instances=4,
        samples_per_epoch=iters_per_epoch * batch_size,
        camera_mode='more_camera'),
    dataset=dict(pipeline=train_pipeline))

# ICE clusters the momentum encoder's features (eps 0.55, k1=30, k2=6) and
# updates the momentum encoder after every optimiser step.
default_hooks = dict(
    pseudo_label=dict(
        feature_source='momentum',
        clusterer=dict(type='DBSCANClusterer', eps=0.55, min_samples=4)),
    # momentum=None: use model.momentum (0.001 = 1 - alpha, mmengine
    # convention, weight of the online parameters)
    momentum_update=dict(type='MomentumUpdateHook'))
