# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Table 2: easiest positive (most similar own instance proxy) and
# negatives (least similar) in L_MIP, on Market-1501 (figures: README.md).
_base_ = ['./dcmip_r50_market.py']

model = dict(loss_mip=dict(hardness='easiest'))
