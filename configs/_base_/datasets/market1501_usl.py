# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 for unsupervised training: data/market1501/ holds
# bounding_box_train/, query/ and bounding_box_test/ (Market-1501-v15.09.15);
# the loaders of ../recipes/usl_pk.py.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='Market1501', data_root='data/market1501/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
