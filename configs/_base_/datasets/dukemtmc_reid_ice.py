# Copyright (c) mmreid_usl contributors. All rights reserved.
# DukeMTMC-reID (data/dukemtmc-reid/) with ICE's data recipe
# (../recipes/ice_3view.py).
_base_ = ['../recipes/ice_3view.py']

__data = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
