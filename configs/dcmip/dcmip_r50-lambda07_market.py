# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supplement Fig. 1 (loss weight): lambda = 0.7, i.e. 0.7 L_DCP +
# 0.3 L_MIP once the instance proxies are on (the paper finds 0.5 best
# on Market-1501 and MSMT17). Other values: --cfg-options model.dcp_weight=X.
_base_ = ['./dcmip_r50_market.py']

model = dict(dcp_weight=0.7)
