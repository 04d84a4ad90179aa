# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP as the UNOFFICIAL code (Trangle12/DCMIP at dfe3563) trains it on
# Market-1501 (its reproduction's figures: README.md). Its two stages run as
# one schedule of 90 epochs x 100 iterations of 256 = 16 ids x 16:
# - stage 1, epochs 0-39: L_DCP only, Adam 3.5e-4 / wd 5e-4, x0.1 at 20;
# - stage 2, epochs 40-89: a NEW Adam and StepLR (OptimizerResetHook: Adam's
#   moments cleared, lr back to 3.5e-4, x0.1 at 60 and 80) and the instance
#   proxies; the EMA starts as a copy of the stage-1 model and then runs
#   continuously.
# Its losses and proxies: the branch of the cluster-proxy update its source
# labels `#Market1501` (proxy 1 batch-hard, proxy 2 batch mean), the hybrid
# L_DCP (0.2 relu-margin on proxy 1), L_MIP with the hardest proxy of every
# other cluster, weights 1 + 1, the ONLINE features written into the instance
# proxies. Its BatchNorm: DataParallel on 4 GPUs, i.e. contiguous chunks of
# 64 (4 ids x 16) for the online and the EMA forward (no ShuffleBN), the
# running statistics of the first chunk only. Input 320x128, PIL bicubic.
# Every difference from dcmip_r50_market.py (the paper's recipe), and what is
# not reproduced (stage 2 starts from the LAST stage-1 model, not the one
# best on the test set; fp32 unless --amp; the sampler's epoch boundaries):
# configs/dcmip/README.md. Run it on ONE process (`python tools/train.py`,
# 256 images in 4 BN groups of 64): the hybrid margin acts on the loss of the
# whole 256-image batch as in the unofficial code; N processes apply it to
# each process's share.
_base_ = ['./dcmip_r50_market.py']

__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 320),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(320, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(
        type='Resize',
        scale=(128, 320),
        interpolation='bicubic',
        backend='pillow'),
    dict(type='PackReIDInputs'),
]
# 100 iterations per epoch (samples_per_epoch is written for the 4 x 64
# layout; the global batch stays 256 on any number of processes)
train_dataloader = dict(
    sampler=dict(samples_per_epoch=100 * 64),
    dataset=dict(pipeline=__train_pipeline))
cluster_dataloader = dict(dataset=dict(pipeline=__test_pipeline))
val_dataloader = dict(dataset=dict(pipeline=__test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=__test_pipeline))

model = dict(
    # DataParallel: contiguous 64-image chunks, only the chunk on GPU 0
    # moves the BN running statistics (online and EMA forwards alike)
    bn_running_stats='first_group',
    momentum_shuffle_bn=False,
    # `#Market1501` branch: proxy 1 batch-hard, proxy 2 batch mean
    dcp_memory=dict(update_modes=('hard', 'mean')),
    # 0.5 * (CE(proxy 2) + relu(CE(proxy 1) - 0.2))
    loss_dcp=dict(mode='hybrid', margin=0.2, margin_index=0),
    # logit of the own cluster: its least similar proxy; of every other
    # cluster: its most similar one (C - 1 negatives)
    loss_mip=dict(negative_mode='per_cluster', hardness='hardest'),
    ins_start_epoch=40,  # stage 2
    dcp_weight=1.0,
    mip_weight=1.0,
    # the EMA is a copy of the stage-1 model when stage 2 starts, then
    # continuous
    momentum_reinit='until_mip',
    # the online features replace the instance proxies
    mip_update_encoder='student')

# Stage 1 and stage 2 each have their own StepLR(20); the second starts from
# the learning rate the OptimizerResetHook restores at epoch 40.
param_scheduler = [
    dict(
        type='StepLR',
        step_size=20,
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=40),
    dict(
        type='StepLR',
        step_size=20,
        gamma=0.1,
        by_epoch=True,
        begin=40,
        end=90),
]
# a new optimiser (from optim_wrapper) when stage 2 starts
custom_hooks = [dict(type='OptimizerResetHook', epochs=[40])]
# evaluated after epochs 10, 20, ..., 90 (the unofficial code: every 10
# epochs of each stage)
train_cfg = dict(max_epochs=90, val_interval=10)
