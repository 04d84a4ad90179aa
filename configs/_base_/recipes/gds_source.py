# Copyright (c) mmreid_usl contributors. All rights reserved.
# The labelled SOURCE of domain adaptation (stage 1 of Theory / GDS,
# docs/algorithms/gds.md), without a dataset: the training images with their
# true ids, P x K = 32 ids x 4 images (RandomIdentitySampler: cameras
# ignored, an id's images drawn with replacement only if it has fewer than
# 4), one epoch = one pass over the images (a dataset base sets
# samples_per_epoch; Theory's stage-1 epoch, #ids x K:
# train_dataloader.sampler.samples_per_epoch='clusters').
# Augmentation (GDS supplement Sec. 3): random crop (pad 10), flip, random
# erasing with Theory's maximum area 0.2; PIL bilinear resize (Theory's
# torchvision Resize). Validation and test on the source test split; the
# direct transfer to a target is `tools/test.py` with the target pair's
# stage-2 config (configs/gds/README.md). A dataset base
# (_base_/datasets/<dataset>_gds-source.py) inherits it and sets the data by
# key.
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5, max_area_ratio=0.2),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bilinear',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(
        type='PseudoIdentitySampler',
        num_instances=4,
        camera_mode='ignore',
        labels_from='gt'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(split='train', pipeline=__train_pipeline))

__test_loader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'))
val_dataloader = dict(
    **__test_loader,
    dataset=dict(split='test', pipeline=__test_pipeline))
val_evaluator = dict(type='ReIDMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
