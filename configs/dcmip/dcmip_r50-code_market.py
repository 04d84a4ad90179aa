# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP as the UNOFFICIAL code (Trangle12/DCMIP) trains it on Market-1501
# (its reproduction: 86.7 mAP / 94.5 R1): input 320x128; two stages run as
# one schedule of 90 epochs x 100 iterations (4 processes x 64 = 16 ids x
# 16): stage 1 = epochs 0-39 with L_DCP only, stage 2 = epochs 40-89 with
# the instance proxies, whose learning rate restarts at 3.5e-4 (x0.1 every
# 20 epochs within each stage). Its losses and proxies: the hybrid L_DCP
# (0.2 relu-margin on the sequentially updated proxy), proxies updated
# ('momentum', 'mean'), L_MIP with the hardest proxy of every other cluster,
# weights 1 + 1, and an EMA started from the stage-1 model and continuous
# afterwards. Kept from the paper: the instance proxies are replaced with the
# momentum encoder's features (the unofficial code writes the online ones, a
# bug: `--cfg-options model.mip_update_source=student` reproduces it).
# Not reproduced: stage 2 starts a NEW Adam (moments reset; here they carry
# over) from the stage-1 checkpoint that was best on the test set (here the
# last one), and mixed precision (add --amp).
_base_ = ['./dcmip_r50_market.py']

__train_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(128, 320), interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(320, 128), padding=10),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]
__test_pipeline = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(128, 320), interpolation='bicubic'),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    sampler=dict(samples_per_epoch=100 * 64),
    dataset=dict(pipeline=__train_pipeline))
cluster_dataloader = dict(dataset=dict(pipeline=__test_pipeline))
val_dataloader = dict(dataset=dict(pipeline=__test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=__test_pipeline))

model = dict(
    dcp_memory=dict(update_modes=('momentum', 'mean')),
    loss_dcp=dict(mode='hybrid', margin=0.2),
    loss_mip=dict(negative_mode='per_cluster', hardness='hardest'),
    ins_start_epoch=40,
    dcp_weight=1.0,
    mip_weight=1.0,
    momentum_reinit='until_mip')

# stage 1: x0.1 at epoch 20; stage 2: back to 3.5e-4 at epoch 40 (x10), then
# x0.1 at 60 and 80
param_scheduler = [
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True, begin=0,
         end=40),
    dict(type='MultiStepLR', milestones=[40], gamma=10.0, by_epoch=True),
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True, begin=40,
         end=90),
]
train_cfg = dict(max_epochs=90, val_interval=10)
