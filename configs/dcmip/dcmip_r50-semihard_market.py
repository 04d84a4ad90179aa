# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Table 2: semi-hard positive and negatives in L_MIP, on
# Market-1501 (figures, against the hardest: README.md). The
# definition (median own proxy; the most similar negatives less similar than
# it) is ours: see MultiInstanceProxyLoss.
_base_ = ['./dcmip_r50_market.py']

model = dict(loss_mip=dict(hardness='semi_hard'))
