# Copyright (c) mmreid_usl contributors. All rights reserved.
# CUHK03 (detected) in Market layout with the project's own split (even-ranked
# ids train, odd-ranked ids test; docs/algorithms/common.md):
# data/cuhk03_detected/ holds bounding_box_train/ (7,076 images / 734 ids),
# query/ (1,466) and bounding_box_test/ (5,555). The images are a 128x64 copy;
# the CPU-scale configs upsample them 1.5x to 192x96, which gives MobileNetV2 a
# 6x3 instead of a 4x2 final map (the comparison:
# configs/cluster_contrast/README.md).
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='ReIDFolderDataset', data_root='data/cuhk03_detected/')
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(96, 192), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(192, 96), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(96, 192), interpolation='bicubic'),
    dict(type='PackReIDInputs'),
]
# ~9.6 images per id: 16 ids x 4 instances per batch, one process (a
# per-process batch: no global_batch_size).
train_dataloader = dict(
    global_batch_size=None,
    batch_size=64,
    num_workers=2,
    sampler=dict(num_instances=4, samples_per_epoch=100 * 64),
    dataset=dict(__data, pipeline=__train_pipeline))
cluster_dataloader = dict(
    num_workers=2, dataset=dict(__data, pipeline=__test_pipeline))
val_dataloader = dict(
    num_workers=2, dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = val_dataloader
