# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Table 2: easiest positive (most similar own instance proxy) and
# negatives (least similar) in L_MIP (paper: 85.8 mAP / 94.3 R1 on
# Market-1501).
_base_ = ['./dcmip_r50_market.py']

model = dict(loss_mip=dict(hardness='easiest'))
