# Copyright (c) mmreid_usl contributors. All rights reserved.
# MSMT17 (data/msmt17/) with ICE's data recipe.
_base_ = ['./market1501_ice.py']

__data = dict(type='MSMT17', data_root='data/msmt17/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
