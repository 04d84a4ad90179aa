# Copyright (c) mmreid_usl contributors. All rights reserved.
# Baseline + GDS-H, DukeMTMC-reID -> Market-1501: gds_r50_duke2market.py
# plus the distribution-based hard mining L_H (lambda_h = 0.5, the tails
# mu+ + 3 sigma+ and mu- - 3 sigma- pushed apart; reconstructed form,
# switch hard_mining='beyond_mean' for the alternative).
_base_ = ['./gds_r50_duke2market.py']

model = dict(loss_gds=dict(lambda_h=0.5, hard_mining='tails', tail_k=3.0))
