# Copyright (c) mmreid_usl contributors. All rights reserved.
# The Theory / GDS adaptation stage with an ImageNet MobileNetV2
# (`torchvision://mobilenet_v2`, 1280-d) instead of ResNet-50: theory_r50.py
# with the backbone swapped; average pooling and the FC-BN-ReLU head kept.
# A run starts from its stage-1 checkpoint (`stage1_checkpoint`), which
# replaces the ImageNet weights (they are then not loaded).
# Widths follow the backbone (the neck and memories derive them). Offline
# machines: the README's note on torchvision weights.
_base_ = ['./theory_r50.py']

model = dict(
    encoder=dict(
        backbone=dict(
            _delete_=True,
            type='ReIDMobileNetV2',
            widen_factor=1.0,
            out_indices=(7, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://mobilenet_v2'))))
