# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS-H at CPU scale, CUHK03 cameras 3-10 -> 1-2:
# gds_mbv2_cuhk03-cam3to10-to-cam1to2.py plus the hard mining L_H (lambda_h
# 0.5, tails mu +- 3 sigma), as gds-h_r50_duke2market.py.
_base_ = ['./gds_mbv2_cuhk03-cam3to10-to-cam1to2.py']

model = dict(loss_gds=dict(lambda_h=0.5, hard_mining='tails', tail_k=3.0))
