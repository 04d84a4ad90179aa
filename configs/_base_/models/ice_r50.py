# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE (Chen et al., ICCV 2021), official-code defaults
# (docs/algorithms/ice.md): ResNet-50 with last stride 1, AVERAGE pooling,
# BNNeck with frozen bias; a momentum encoder with its own BN statistics whose
# features are clustered (eps 0.55); frozen cluster + camera proxies rebuilt
# from momentum features after every clustering; four losses with weights 1,
# 0.5 (inside the camera loss), 1, 10. The momentum encoder is updated after
# every optimiser step and both encoders are evaluated.
_base_ = ['../pseudo_label/dbscan_jaccard.py', './reid_r50_gem.py']

model = dict(
    type='ICE',
    encoder=dict(
        pooling=dict(_delete_=True, type='mmpretrain.GlobalAveragePooling')),
    # mmengine convention: momentum is the weight of the NEW (student)
    # parameters, theta_m = (1 - m) * theta_m + m * theta_s; the paper's
    # alpha = 0.999 (weight of the old) is momentum = 0.001.
    momentum=0.001,
    momentum_buffer_mode='own',  # BN running stats of its own (not copied)
    # BN groups (images per group) of the momentum forwards (after ShuffleBN)
    # and of the student forward = the official per-GPU batch of 8, so one
    # process with the global batch of 32 normalises like 4 GPUs x 8; None
    # would normalise over the whole per-process batch.
    momentum_bn_group_size=8,
    bn_group_size=8,
    gather_keys=True,  # DDP: in-batch losses over the global batch (= DP)
    sync_momentum_buffers=True,  # DDP: average momentum BN stats over ranks
    cluster_encoder='momentum',
    proxy_memory=dict(type='CameraProxyMemory'),
    # paper: label_smoothing=0 (plain softmax log loss)
    loss_agnostic=dict(
        type='AgnosticProxyLoss',
        temperature=0.5,
        label_smoothing=0.1,
        loss_weight=1.0),
    # paper: variant='paper' (other-camera positives, per-positive softmax);
    # proxy_norm='official' normalises the transposed proxy bank (each
    # feature dimension across all proxies) as the official code does, which
    # rescales the logits; 'cosine' is the paper's per-proxy cosine
    loss_cross=dict(
        type='CrossCameraProxyLoss',
        temperature=0.07,
        num_negatives=50,
        variant='code',
        proxy_norm='official',
        loss_weight=0.5),
    loss_h_ins=dict(
        type='HardInstanceContrastiveLoss', temperature=0.1, loss_weight=1.0),
    # paper: direction='p_q' (the paper writes KL(P||Q), the code KL(Q||P))
    loss_s_ins=dict(
        type='SoftInstanceConsistencyLoss',
        temperature=0.4,
        direction='q_p',
        loss_weight=10.0),
    view_order=(0, 1, 2),  # MultiView order: strong1, weak, strong2
    student_strong2=True,
    momentum_strong1=True,
    labels_from='pseudo',
    # only the momentum encoder is used for inference
    test_cfg=dict(encoder='momentum'))

# ICE clusters the momentum features with eps 0.55 (official default)
default_hooks = dict(
    pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.55))),
    # momentum=None: use model.momentum
    momentum_update=dict(type='MomentumUpdateHook'))
# evaluate the student and the momentum encoder (student/..., momentum/...)
val_cfg = dict(type='MomentumValLoop')
