# Copyright (c) mmreid_usl contributors. All rights reserved.
# CUHK03-detected (data/cuhk03_detected/, see cuhk03_detected_usl.py) at
# 192x96 with ICE's three-view recipe; one process, batch 32 = 8 pseudo-ids
# x 4 instances.
_base_ = ['./cuhk03_detected_usl.py']

__strong = [
    dict(type='Resize', scale=(96, 192), interpolation='bicubic'),
    dict(type='RandomCrop', crop_size=(192, 96), padding=10),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.5),
    dict(type='ReIDRandomErasing', erase_prob=0.6),
]
__weak = [dict(type='Resize', scale=(96, 192), interpolation='bicubic')]
train_dataloader = dict(
    batch_size=32,
    persistent_workers=True,
    sampler=dict(
        num_instances=4,
        samples_per_epoch=100 * 32,
        camera_mode='more_camera'),
    dataset=dict(pipeline=[
        dict(type='LoadReIDImage'),
        dict(type='MultiView', transforms=[__strong, __weak, __strong]),
        dict(type='PackReIDInputs'),
    ]))
cluster_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
