# Copyright (c) mmreid_usl contributors. All rights reserved.
# A real cross-domain source on this machine's data: the data/cuhk03_detected
# training images of cameras 3-10 (file-name numbers; 2,967 images / 312 ids,
# relabelled 0..311). CUHK03's five camera pairs were recorded at different
# places, so cameras 3-10 (source) and 1-2 (target,
# cuhk03_detected-cam3to10-to-cam1to2_gds.py) are two domains. Stage-1 data
# as ../recipes/gds_source.py, at the 192x96 of the project's CPU configs
# (the 128x64 images upsampled 1.5x, _base_/datasets/cuhk03_detected_usl.py),
# batch 64 = 16 ids x 4 (one process on 2 cores; 312 ids x ~9.5 images), one
# epoch = one pass (2,967 -> 46 batches). Validation / test: the source test
# split (query / gallery of cameras 3-10).
_base_ = ['../recipes/gds_source.py']

__data = dict(
    type='ReIDFolderDataset',
    data_root='data/cuhk03_detected/',
    cameras=[3, 4, 5, 6, 7, 8, 9, 10])
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(96, 192),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(192, 96), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5, max_area_ratio=0.2),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(96, 192),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(samples_per_epoch=46 * 64),
    dataset=dict(__data, pipeline=__train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = val_dataloader
