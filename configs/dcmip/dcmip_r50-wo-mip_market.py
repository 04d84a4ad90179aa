# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation "DCMIP w/o MIP" (supplement Table 1, first row: 85.4 mAP / 93.7 R1
# on Market-1501): Cluster Contrast + the discrepant cluster proxies, no
# instance proxies (L_DCP alone all along).
_base_ = ['./dcmip_r50_market.py']

model = dict(instance_memory=None, loss_mip=None)
