# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation, camera-agnostic: L_agnostic + L_s_ins (Table 4, README.md).
_base_ = ['./ice-agnostic_r50_market.py']

model = dict(loss_h_ins=None)
