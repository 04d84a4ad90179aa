# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 (data/market1501/, see market1501_usl.py) with ICE's data
# recipe (../recipes/ice_3view.py).
_base_ = ['../recipes/ice_3view.py']

__data = dict(type='Market1501', data_root='data/market1501/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
