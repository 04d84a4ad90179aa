# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE's data recipe (docs/algorithms/ice.md), without a dataset: the loaders
# of usl_pk.py, but every training image yields three views (strong1, weak,
# strong2); "strong" = resize, pad 10 + random crop, flip, Gaussian blur
# (p=0.5, radius ~ U(0.1, 2.0)), random erasing p=0.6; "weak" = resize only.
# P x K = 2 x 4 per process (the official 4 GPUs x 8 = 32 = 8 ids x 4),
# MoreCameraSampler behaviour: exactly K=4 per pseudo-id, one image per
# camera first; 400 iterations per epoch. A dataset base
# (_base_/datasets/<dataset>_ice.py) inherits it and sets the data by key.
_base_ = ['./usl_pk.py']

__strong = [
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',  # radius uniform in [0.1, 2.0]
        prob=0.5),
    dict(type='ReIDRandomErasing', erase_prob=0.6),
]
__weak = [
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bicubic',
        backend='pillow')
]
train_dataloader = dict(
    global_batch_size=32,  # 4 processes x 8; BN groups of 8 in the model
    batch_size=8,
    sampler=dict(
        num_instances=4, samples_per_epoch=400 * 8, camera_mode='more_camera'),
    dataset=dict(pipeline=[
        dict(type='LoadReIDImage'),
        dict(type='MultiView', transforms=[__strong, __weak, __strong]),
        dict(type='PackReIDInputs'),
    ]))
