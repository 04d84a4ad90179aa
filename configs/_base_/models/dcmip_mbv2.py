# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP with an ImageNet MobileNetV2 (`torchvision://mobilenet_v2`,
# 1280-d) instead of ResNet-50: dcmip_r50.py with the backbone swapped;
# GeM pooling and BNNeck kept.
# Widths follow the backbone (the neck and memories derive them). Offline
# machines: the README's note on torchvision weights.
_base_ = ['./dcmip_r50.py']

model = dict(
    encoder=dict(
        backbone=dict(
            _delete_=True,
            type='ReIDMobileNetV2',
            widen_factor=1.0,
            out_indices=(7, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://mobilenet_v2'))))
