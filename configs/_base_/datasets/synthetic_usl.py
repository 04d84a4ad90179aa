# Copyright (c) mmreid_usl contributors. All rights reserved.
# The synthetic pedestrians of the quick start (SyntheticPedestrians, default
# generator: 100 train / 50 test identities, 4 cameras), generated on first
# use into ~/.cache/mmreid_usl (or $MMREID_USL_CACHE), nothing to download,
# at 64x32 (the 128x64 images halved; crop padding 4), on
# ../recipes/usl_pk.py: one process, batch 32 = 8 pseudo-ids x 4 (a
# per-process batch: no global_batch_size), 40 iterations per epoch.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='SyntheticPedestrians', data_root=None)
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(32, 64), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(64, 32), padding=4),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(32, 64), interpolation='bicubic'),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    global_batch_size=None,
    batch_size=32,
    num_workers=2,
    sampler=dict(num_instances=4, samples_per_epoch=40 * 32),
    dataset=dict(__data, pipeline=__train_pipeline))
cluster_dataloader = dict(
    num_workers=0, dataset=dict(__data, pipeline=__test_pipeline))
val_dataloader = dict(
    num_workers=0, dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = val_dataloader
