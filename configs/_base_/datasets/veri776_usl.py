# Copyright (c) mmreid_usl contributors. All rights reserved.
# VeRi-776 (vehicles): data/veri776/ holds image_train/, image_query/ and
# image_test/ (the VeRi folder). Images are resized to 224x224 and the
# epoch has 400 iterations, as in the Cluster Contrast paper and README
# (--height 224 --width 224 --iters 400). Resize as the official code: PIL
# bicubic (antialiased), i.e. mmcv's pillow backend.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='VeRi776', data_root='data/veri776/')
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic',
         backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(224, 224), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic',
         backend='pillow'),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    sampler=dict(samples_per_epoch=400 * 64),
    dataset=dict(__data, pipeline=__train_pipeline))
cluster_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
val_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
