# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP (Zou et al., ICCV 2023; docs/algorithms/dcmip.md), built on Cluster
# Contrast: ResNet-50 with last stride 1, GeM pooling (learnable p), BNNeck
# with frozen bias; clustering of the STUDENT's features (Algorithm 1);
# M = 2 discrepant cluster proxies per cluster; from epoch E_ins = 20 (the
# 21st) K = 16 instance proxies per cluster from a momentum encoder that is
# re-initialised from the student at every re-clustering; loss
# 0.5 L_DCP + 0.5 L_MIP (L_DCP alone before E_ins). The momentum encoder is
# updated after every optimiser step, both encoders are evaluated and the
# momentum encoder is deployed. Which value comes from the paper, the
# unofficial code (Trangle12/DCMIP) or us: configs/dcmip/README.md.
_base_ = ['../pseudo_label/dbscan_jaccard.py', './reid_r50_gem.py']

model = dict(
    type='DCMIP',
    # mmengine convention: momentum is the weight of the NEW (student)
    # parameters, theta_m = (1 - m) * theta_m + m * theta_s; alpha = 0.999
    # (weight of the old, unofficial code) is momentum = 0.001.
    momentum=0.001,
    momentum_buffer_mode='own',  # BN running stats of its own (unofficial)
    # images per BN group of the student forward / of the (ShuffleBN)
    # momentum forwards; None = the whole per-process batch
    # (dcmip_r50_1xb256_market.py emulates 4 GPUs on one process)
    bn_group_size=64,
    momentum_bn_group_size=64,
    sync_momentum_buffers=True,  # DDP: average momentum BN stats over ranks
    cluster_encoder='student',  # paper (Algorithm 1, line 2)
    # discrepant cluster proxies: every type starts at the normalised
    # centroid; 'hard' = batch-hard instance, 'mean' = batch mean (the branch
    # the unofficial code labels #Market1501; the one it runs as committed,
    # #MSMT17, is ('momentum', 'mean')); old_weight = weight of the OLD
    # entry, 0.1 (unofficial)
    dcp_memory=dict(
        type='DiscrepantClusterMemory',
        update_modes=('hard', 'mean'),
        old_weight=0.1,
        encoder='student'),
    # K = 16 instance proxies per cluster (paper), filled from the momentum
    # encoder with members drawn with replacement (seed + epoch)
    instance_memory=dict(
        type='InstanceProxyMemory',
        num_instances=16,
        encoder='momentum',
        seed=0),
    # L_DCP = mean over the proxy types of ClusterNCE (ours); the unofficial
    # code: mode='hybrid' (0.2 relu-margin on the first type)
    loss_dcp=dict(
        type='DiscrepantClusterNCELoss',
        temperature=0.05,
        mode='mean',
        margin=0.2),
    # L_MIP: hardest own-cluster instance proxy as positive, the global top-N
    # most similar other-cluster proxies as negatives (paper; N = 50 is ours,
    # the paper's value is not available); the unofficial code:
    # negative_mode='per_cluster'; supplement Table 2: hardness
    loss_mip=dict(
        type='MultiInstanceProxyLoss',
        temperature=0.05,
        num_negatives=50,
        negative_mode='global',
        hardness='hardest'),
    ins_start_epoch=20,  # E_ins: instance proxies from the 21st epoch
    dcp_weight=0.5,  # lambda; mip_weight None = 1 - lambda
    mip_weight=None,
    # 'every' (paper): copy the student into the momentum encoder at every
    # re-clustering; 'until_mip' (unofficial): continuous EMA after E_ins
    momentum_reinit='every',
    # 'student' reproduces the unofficial code's bug (online features written
    # into the instance proxies)
    mip_update_encoder='momentum',
    # 'gt' trains on the dataset's true ids through the same pipeline: the
    # supervised upper bound of this unsupervised config
    labels_from='pseudo',
    # the momentum encoder is deployed (supplement C)
    test_cfg=dict(encoder='momentum'))

default_hooks = dict(
    # DBSCAN eps per dataset (supplement Fig. 2): set by the leaf configs
    pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.45))),
    # momentum=None: use model.momentum
    momentum_update=dict(type='MomentumUpdateHook'))
# evaluate the student and the momentum encoder (student/..., momentum/...)
val_cfg = dict(type='MomentumValLoop')
