# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware), ResNet-50, DukeMTMC-reID (eps 0.55 as in the official code).
# Paper: 69.9 mAP / 83.3 R1.
_base_ = ['./ice_r50_market.py']

__data = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
