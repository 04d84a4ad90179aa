# Copyright (c) mmreid_usl contributors. All rights reserved.
# The unsupervised data recipe of Cluster Contrast and DCMIP
# (docs/algorithms/common.md), without a dataset: a dataset base
# (_base_/datasets/<dataset>_usl.py) inherits it and sets `type` /
# `data_root` of the four loaders by key. Names starting with `__` are
# helpers of this file only (mmengine leaves them out of the merged config);
# override the fields of the dataloaders instead, e.g.
# `train_dataloader.global_batch_size` (the batch over all processes).

# Augmentation: resize (bicubic), flip, pad 10 + random crop, random erasing
# p=0.5. Resizing is PIL bicubic with antialiasing as in the official
# (torchvision) pipelines: Duke and MSMT17 images are downscaled, and cv2
# would alias them. (The CPU-scale CUHK03 and synthetic configs upsample
# with cv2.)
__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 256),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]

# P x K over pseudo-identities. The official runs use 4 GPUs x 64 = 256 = 16
# ids x 16 instances, 200 iterations per epoch. global_batch_size is the batch
# over all processes: ReIDRunner gives each of N processes 256 / N images and
# keeps 200 iterations (samples_per_epoch / batch_size as written here, i.e.
# the 4-process layout); with the model's bn_group_size (64) one process
# normalises in 4 BN groups of 64, exactly like 4 GPUs.
train_dataloader = dict(
    global_batch_size=256,
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(
        type='PseudoIdentitySampler',
        num_instances=16,
        samples_per_epoch=200 * 64,
        camera_mode='prefer_other'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(split='train', pipeline=__train_pipeline))

# Every image once, in dataset order: feature extraction for clustering and
# evaluation.
__test_loader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'))
# The PseudoLabelHook extracts features of the training images with the test
# pipeline through this loader.
cluster_dataloader = dict(
    **__test_loader, dataset=dict(split='train', pipeline=__test_pipeline))
val_dataloader = dict(
    **__test_loader, dataset=dict(split='test', pipeline=__test_pipeline))
val_evaluator = dict(type='ReIDMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
