# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, IBN-ResNet-50-a (Pan et al. ECCV 2018), Market-1501: the
# ResNet-50 config of the same dataset with the backbone swapped (official
# -a resnet_ibn50a), initialised from the IBN-Net authors' ImageNet weights
# (downloaded once into torch.hub's cache). Paper Table 2: 84.1 / 93.2 mAP / R1.
_base_ = ['./cluster-contrast_r50_market.py']

model = dict(
    encoder=dict(
        backbone=dict(
            type='ResNetIBN',
            init_cfg=dict(
                type='Pretrained',
                checkpoint='https://github.com/XingangPan/IBN-Net/releases/'
                'download/v1.0/resnet50_ibn_a-d9d0bb7b.pth'))))
