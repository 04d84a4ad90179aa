# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation "DCMIP w/o MIP" (supplement Table 1, first row, Market-1501;
# figures: README.md): Cluster Contrast + the discrepant cluster proxies, no
# instance proxies (L_DCP alone all along).
_base_ = ['./dcmip_r50_market.py']

model = dict(instance_memory=None, loss_mip=None)
