# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS-H, DukeMTMC-reID -> MSMT17; see gds-h_r50_duke2market.py.
_base_ = ['./gds_r50_duke2msmt17.py']

model = dict(loss_gds=dict(lambda_h=0.5, hard_mining='tails', tail_k=3.0))
