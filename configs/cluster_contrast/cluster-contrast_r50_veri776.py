# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, VeRi-776 (data/veri776/: image_train/,
# image_query/, image_test/; the dataset of
# configs/_base_/datasets/veri776_usl.py). The official README command:
# --iters 400 --momentum 0.1 --eps 0.6 --height 224 --width 224 (the
# default here); the paper: 224x224, best eps 0.7 (Table 7: 42.5 mAP; set
# default_hooks.pseudo_label.labeler.clusterer.eps=0.7), Table 2: 42.5 /
# 87.7 mAP / R1 (IBN: cluster-contrast_r50-ibn_veri776.py, 43.6 / 89.8).
_base_ = ['./cluster-contrast_r50_market.py']

__data = dict(type='VeRi776', data_root='data/veri776/')
# 224x224; resize as the official code (PIL bicubic, antialiased)
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
# 400 iterations per epoch
train_dataloader = dict(
    sampler=dict(samples_per_epoch=400 * 64),
    dataset=dict(__data, pipeline=__train_pipeline))
cluster_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
val_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
test_dataloader = dict(dataset=dict(__data, pipeline=__test_pipeline))
