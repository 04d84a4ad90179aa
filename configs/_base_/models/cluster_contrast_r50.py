# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, official-code defaults (§1): ResNet-50 with last stride 1,
# GeM pooling (learnable p), BNNeck with frozen bias, cluster memory with
# temperature 0.05 and the sequential momentum update.
model = dict(
    type='ClusterContrast',
    data_preprocessor=dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    encoder=dict(
        type='ReIDEncoder',
        backbone=dict(
            type='mmpretrain.ResNet',
            depth=50,
            strides=(1, 2, 2, 1),  # last stride 1: 256x128 -> 16x8 map
            out_indices=(3, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet50')),
        neck=dict(type='mmpretrain.GeneralizedMeanPooling', p=3.0),
        head=dict(type='BNNeck', in_channels=2048)),
    # momentum = weight of the OLD memory entry (official cm.py); the
    # official README commands use 0.1
    memory=dict(
        type='ClusterMemory',
        feat_dim=2048,
        temperature=0.05,
        momentum=0.1,
        update_mode='momentum'),
    memory_init='mean',
    test_cfg=dict(feat_source='student'))
