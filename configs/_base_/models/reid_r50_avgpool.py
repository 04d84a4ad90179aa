# Copyright (c) mmreid_usl contributors. All rights reserved.
# The encoder of the "Theory" / GDS domain-adaptation models
# (docs/algorithms/gds.md): the standard ImageNet ResNet-50 (last stride 2),
# average pooling ("pool5", 2048-d) and Theory's embedding head
# (lsongx/DomainAdaptiveReID, reid/models/resnet.py): FC 2048 -> 2048
# without bias (weight N(0, 0.001^2)) -> BN (trainable bias) -> ReLU, whose
# width is derived from the backbone; ImageNet mean/std with BGR->RGB. The
# supervised (stage 1) and Theory (stages 2-3) model bases inherit it, so
# the stage-3 model loads the stage-1 encoder AND head (only the
# classifier is dropped). The BNNeck of the other methods:
# neck=dict(_delete_=True, type='BNNeck').
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
            out_indices=(3, ),
            init_cfg=dict(
                type='Pretrained', checkpoint='torchvision://resnet50')),
        pooling=dict(type='mmpretrain.GlobalAveragePooling'),
        neck=dict(type='FCBNNeck')))
