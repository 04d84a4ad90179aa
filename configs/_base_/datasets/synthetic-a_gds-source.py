# Copyright (c) mmreid_usl contributors. All rights reserved.
# Domain A of the synthetic pedestrians as the labelled SOURCE of domain
# adaptation (stage 1 of Theory / GDS, docs/algorithms/gds.md): the quick
# start's dataset itself (SyntheticPedestrians with the default generator,
# domain 'a': 1,049 training images / 100 ids, 4 cameras; generated on first
# use into ~/.cache/mmreid_usl or $MMREID_USL_CACHE, nothing downloaded).
# As ../recipes/gds_source.py at the 64x32 of the quick start (the 128x64
# images halved; crop padding 4 instead of 10 at 256x128): true ids,
# P x K = 8 ids x 4 (one process), one epoch = one pass over the images
# (1,049 -> 32 batches of 32). Validation / test: the domain-A test split
# (177 query / 350 gallery images, 50 ids). The target side of the pair:
# synthetic-a2b_gds.py.
_base_ = ['../recipes/gds_source.py']

__data = dict(type='SyntheticPedestrians', data_root=None)
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(32, 64),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(64, 32), padding=4),
    dict(type='ReIDRandomErasing', erase_prob=0.5, max_area_ratio=0.2),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(32, 64),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(samples_per_epoch=32 * 32),
    dataset=dict(__data, pipeline=__train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = val_dataloader
