# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE (Chen et al., ICCV 2021), official-code defaults (algorithms.md §2):
# ResNet-50 with last stride 1, AVERAGE pooling, BNNeck with frozen bias; a
# momentum encoder with its own BN statistics; frozen cluster + camera
# proxies rebuilt from momentum features after every clustering; four losses
# with weights 1, 0.5 (inside the camera loss), 1, 10.
model = dict(
    type='ICE',
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
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(type='BNNeck', in_channels=2048)),
    # mmengine convention: momentum is the weight of the NEW (online)
    # parameters, theta_m = (1 - m) * theta_m + m * theta_o; the paper's
    # alpha = 0.999 (weight of the old) is momentum = 0.001.
    momentum=0.001,
    momentum_buffer_mode='own',  # BN running stats of its own (not copied)
    # ShuffleBN BN groups per process for the momentum forwards and BN groups
    # of the online forward; 4 and 4 emulate the official 4-GPU DataParallel
    # BN (8 images per BN) on ONE process with batch 32 (§0.9, §2.8).
    num_bn_groups=1,
    online_bn_groups=1,
    gather_keys=True,  # DDP: in-batch losses over the global batch (= DP)
    sync_momentum_buffers=True,  # DDP: average momentum BN stats over ranks
    proxy_memory=dict(type='CameraProxyMemory', feat_dim=2048),
    # paper: label_smoothing=0 (plain softmax log loss)
    agnostic_loss=dict(
        type='AgnosticProxyLoss',
        temperature=0.5,
        label_smoothing=0.1,
        loss_weight=1.0),
    # paper: variant='paper' (other-camera positives, per-positive softmax)
    camera_loss=dict(
        type='CrossCameraProxyLoss',
        temperature=0.07,
        num_negatives=50,
        variant='code',
        loss_weight=0.5),
    instance_loss=dict(
        type='HardInstanceContrastiveLoss', temperature=0.1, loss_weight=1.0),
    # paper: direction='p_q' (the paper writes KL(P||Q), the code KL(Q||P))
    consistency_loss=dict(
        type='SoftInstanceConsistencyLoss',
        temperature=0.4,
        direction='q_p',
        loss_weight=10.0),
    view_order=(0, 1, 2),  # MultiView order: strong1, weak, strong2
    online_strong2=True,
    momentum_strong1=True,
    # only the momentum encoder is used for inference (§2.9)
    test_cfg=dict(feat_source='momentum'))
