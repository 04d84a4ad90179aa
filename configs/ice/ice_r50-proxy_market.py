# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation, camera-aware: L_proxy only (Table 4, README.md).
_base_ = ['./ice_r50_market.py']

model = dict(loss_h_ins=None, loss_s_ins=None)
