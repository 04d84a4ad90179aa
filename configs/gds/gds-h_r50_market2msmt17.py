# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS-H, Market-1501 -> MSMT17; see gds-h_r50_duke2market.py.
_base_ = ['./gds_r50_market2msmt17.py']

model = dict(loss_gds=dict(lambda_h=0.5, hard_mining='tails', tail_k=3.0))
