# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, official-code defaults
# (docs/algorithms/cluster_contrast.md): ResNet-50 with last stride 1, GeM
# pooling (learnable p), BNNeck with frozen bias, cluster memory with the
# sequential momentum update, ClusterNCE with temperature 0.05; re-clustered
# (Jaccard + DBSCAN) before every epoch.
_base_ = ['../pseudo_label/dbscan_jaccard.py', './reid_r50_gem.py']

model = dict(
    type='ClusterContrast',
    # old_weight = weight of the OLD memory entry (official cm.py `momentum`);
    # the official README commands use 0.1
    memory=dict(
        type='ClusterMemory',
        old_weight=0.1,
        update_mode='momentum',
        init_mode='mean'),
    loss_cluster=dict(type='ClusterNCELoss', temperature=0.05),
    # 'gt' trains on the dataset's true ids through the same pipeline: the
    # supervised upper bound of this unsupervised config
    labels_from='pseudo',
    cluster_encoder='student',
    # images per BatchNorm group of the student forward = the official
    # per-GPU batch, so 1 process with the global batch of 256 normalises
    # like 4 GPUs x 64
    bn_group_size=64,
    test_cfg=dict(encoder='student'))
