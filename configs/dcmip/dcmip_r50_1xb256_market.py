# Copyright (c) mmreid_usl contributors. All rights reserved.
# DCMIP on ONE GPU: `python tools/train.py <this>`. Since the configs give the
# global batch (256 = 16 ids x 16) and the BN group size (64, the paper's
# per-GPU batch), this is dcmip_r50_market.py itself: one process loads 256
# images and normalises them in 4 BN groups of 64 for the student and every
# (ShuffleBN) momentum forward, like the paper's 4-GPU run
# (docs/algorithms/common.md). A plain 1 x 256 BN would normalise over 256
# images, which the official issues of Cluster Contrast report to change the
# result by several mAP. Kept as the name users know.
_base_ = ['./dcmip_r50_market.py']
