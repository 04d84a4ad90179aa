# Copyright (c) mmreid_usl contributors. All rights reserved.
# Ablation, camera-agnostic: L_agnostic only (Table 4: 65.8 Market mAP).
_base_ = ['./ice-agnostic_r50_market.py']

model = dict(instance_loss=None, consistency_loss=None)
