# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, IBN-ResNet-50-a (Pan et al. ECCV 2018), VeRi-776: the
# ResNet-50 config of the same dataset with the backbone swapped (official
# -a resnet_ibn50a), initialised from the IBN-Net authors' ImageNet weights
# (downloaded once into torch.hub's cache). Paper Table 2: 43.6 / 89.8 mAP / R1.
_base_ = ['./cluster-contrast_r50_veri776.py']

model = dict(
    encoder=dict(
        backbone=dict(
            type='ResNetIBN',
            init_cfg=dict(
                type='Pretrained',
                checkpoint='https://github.com/XingangPan/IBN-Net/releases/'
                'download/v1.0/resnet50_ibn_a-d9d0bb7b.pth'))))
