# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast with IBN-ResNet-50-a (Pan et al. ECCV 2018; the official
# code's -a resnet_ibn50a): cluster_contrast_r50.py with the backbone
# swapped (same depth, last stride 1, GeM, BNNeck), initialised from the
# IBN-Net authors' ImageNet weights (downloaded once into torch.hub's cache).
_base_ = ['./cluster_contrast_r50.py']

model = dict(
    encoder=dict(
        backbone=dict(
            type='ResNetIBN',
            init_cfg=dict(
                type='Pretrained',
                checkpoint='https://github.com/XingangPan/IBN-Net/releases/'
                'download/v1.0/resnet50_ibn_a-d9d0bb7b.pth'))))
