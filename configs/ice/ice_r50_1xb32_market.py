# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) on ONE GPU: batch 32 = 8 ids x 4 in one process, with the BN
# statistics of the official 4-GPU DataParallel run emulated by 4 BN groups
# of 8 for the online forward and 4 ShuffleBN groups for every momentum
# forward (§0.9, §2.8). `python tools/train.py <this>`.
_base_ = ['./ice_r50_market.py']

batch_size = 32
train_dataloader = dict(
    batch_size=batch_size, sampler=dict(samples_per_epoch=400 * batch_size))
model = dict(num_bn_groups=4, online_bn_groups=4)
