# Copyright (c) mmreid_usl contributors. All rights reserved.
# Domain adaptation on this machine's data: data/cuhk03_detected cameras 3-10
# (source, 2,967 training images) -> cameras 1-2 (target: 4,109 unlabelled
# training images; test on the query / gallery images of cameras 1-2, 842 /
# 3,226). CUHK03's camera pairs were recorded at different places. Stages
# 2 + 3 as ../recipes/gds_uda_pair.py at 192x96, batch 64 = 16 pseudo-ids x
# 4 (one process on 2 cores); one epoch = #clusters x 4 samples, outliers
# excluded (Theory's; floor(#clusters x 4 / 64) batches, ~20-30 for 300-500
# clusters), or one pass over the 4,109 target images (64 batches) with
# train_dataloader.sampler.samples_per_epoch='dataset'.
_base_ = ['../recipes/gds_uda_pair.py']

__src = dict(
    type='ReIDFolderDataset',
    data_root='data/cuhk03_detected/',
    cameras=[3, 4, 5, 6, 7, 8, 9, 10])
__tgt = dict(
    type='ReIDFolderDataset', data_root='data/cuhk03_detected/',
    cameras=[1, 2])
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
__test_loader = dict(batch_size=64, num_workers=2)
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    dataset=dict(__tgt, pipeline=__train_pipeline))
cluster_dataloader = dict(
    **__test_loader, dataset=dict(__tgt, pipeline=__test_pipeline))
default_hooks = dict(
    pseudo_label=dict(
        reference_dataloader=dict(
            **__test_loader, dataset=dict(__src,
                                          pipeline=__test_pipeline))))
val_dataloader = dict(
    **__test_loader, dataset=dict(__tgt, pipeline=__test_pipeline))
test_dataloader = val_dataloader
