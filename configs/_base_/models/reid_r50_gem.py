# Copyright (c) mmreid_usl contributors. All rights reserved.
# The encoder the unsupervised papers share (docs/algorithms/common.md):
# ImageNet ResNet-50 with last stride 1 (256x128 -> 16x8 map), GeM pooling
# (learnable p, Cluster Contrast / DCMIP; ICE overrides it with average
# pooling), BNNeck with a frozen zero bias whose width is derived from the
# backbone, and the ImageNet mean/std with BGR->RGB. Method model bases
# inherit it next to the pseudo-label base and add their type and parts.
model = dict(
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
            strides=(1, 2, 2, 1),  # last stride 1
            out_indices=(3, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet50')),
        pooling=dict(type='mmpretrain.GeneralizedMeanPooling', p=3.0),
        neck=dict(type='BNNeck')))
