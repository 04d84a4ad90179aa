# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 for unsupervised training: data/market1501/ holds
# bounding_box_train/, query/ and bounding_box_test/ (Market-1501-v15.09.15).
dataset_type = 'Market1501'
data_root = 'data/market1501/'

# Cluster Contrast / DCMIP augmentation (§0.7): resize (bicubic), flip,
# pad 10 + random crop, random erasing p=0.5.
train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(128, 256), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(256, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(128, 256), interpolation='bicubic'),
    dict(type='PackReIDInputs'),
]

# P x K over pseudo-identities; batch_size is per GPU. The official runs use
# 4 GPUs x 64 = 256 = 16 ids x 16 instances, 200 iterations per epoch.
num_instances = 16
batch_size = 64
iters_per_epoch = 200
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(
        type='PseudoIdentitySampler',
        num_instances=num_instances,
        samples_per_epoch=iters_per_epoch * batch_size,
        camera_mode='prefer_other'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

# Every image once, in dataset order: feature extraction for clustering and
# evaluation.
test_loader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    collate_fn=dict(type='default_collate'))
# The PseudoLabelHook extracts features of the training images with the test
# pipeline through this loader.
cluster_dataloader = dict(
    **test_loader,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=test_pipeline))
val_dataloader = dict(
    **test_loader,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
val_evaluator = dict(type='ReIDMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
