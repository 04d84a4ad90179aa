# Copyright (c) mmreid_usl contributors. All rights reserved.
# MSMT17 (data/msmt17/) with ICE's data recipe
# (../recipes/ice_3view.py).
_base_ = ['../recipes/ice_3view.py']

__data = dict(type='MSMT17', data_root='data/msmt17/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
