# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) on ONE GPU: batch 32 = 8 ids x 4 in one process, with the BN
# statistics of the official 4-GPU DataParallel run emulated by BN groups of
# 8 images for the student forward and for every (ShuffleBN) momentum forward
# (docs/algorithms/common.md). `python tools/train.py <this>`.
_base_ = ['./ice_r50_market.py']

train_dataloader = dict(
    batch_size=32, sampler=dict(samples_per_epoch=400 * 32))
model = dict(bn_group_size=8, momentum_bn_group_size=8)
