# Copyright (c) mmreid_usl contributors. All rights reserved.
# DukeMTMC-reID (data/dukemtmc-reid/) with ICE's data recipe.
_base_ = ['./market1501_ice.py']

__data = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
