# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supervised ReID (stage 1 of Theory / GDS) with an ImageNet MobileNetV2
# (`torchvision://mobilenet_v2`, 1280-d) instead of ResNet-50:
# supervised_r50.py with the backbone swapped; average pooling, the
# FC-BN-ReLU head and the classifier kept.
# Widths follow the backbone (the neck and memories derive them). Offline
# machines: the README's note on torchvision weights.
_base_ = ['./supervised_r50.py']

model = dict(
    encoder=dict(
        backbone=dict(
            _delete_=True,
            type='ReIDMobileNetV2',
            widen_factor=1.0,
            out_indices=(7, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://mobilenet_v2'))))
