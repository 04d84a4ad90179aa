# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) on ONE GPU: `python tools/train.py <this>`. Since the configs
# give the global batch (32 = 8 ids x 4) and the BN group size (8, the
# official per-GPU batch), this is ice_r50_market.py itself: one process
# loads 32 images and normalises them in 4 BN groups of 8 for the student and
# every (ShuffleBN) momentum forward, like the official 4-GPU DataParallel
# run (docs/algorithms/common.md). Kept as the name users know.
_base_ = ['./ice_r50_market.py']
