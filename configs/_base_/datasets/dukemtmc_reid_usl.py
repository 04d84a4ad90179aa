# Copyright (c) mmreid_usl contributors. All rights reserved.
# DukeMTMC-reID: data/dukemtmc-reid/ holds bounding_box_train/, query/ and
# bounding_box_test/.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
