# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP on ONE GPU: the whole batch 256 = 16 ids x 16 in one process, with the
# BN statistics of the paper's 4-GPU run (64 images = 4 ids x 16 per GPU)
# emulated by BN groups of 64 images for the student forward and for every
# (ShuffleBN) momentum forward (docs/algorithms/common.md). A plain 1 x 256
# run would normalise over 256 images instead, which the official issues of
# Cluster Contrast report to change the result by several mAP.
# `python tools/train.py <this>`.
_base_ = ['./dcmip_r50_market.py']

train_dataloader = dict(
    batch_size=256, sampler=dict(samples_per_epoch=200 * 256))
model = dict(bn_group_size=64, momentum_bn_group_size=64)
