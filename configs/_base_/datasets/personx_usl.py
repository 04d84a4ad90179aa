# Copyright (c) mmreid_usl contributors. All rights reserved.
# PersonX (synthetic, Sun & Zheng CVPR 2019) in the Market layout Cluster
# Contrast reads: data/personx/ holds bounding_box_train/, query/ and
# bounding_box_test/ (cameras 3, 4, 8, 10, 11, 12 in the file names).
# 256x128 and 200 iterations per epoch as Market-1501.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='PersonX', data_root='data/personx/')
train_dataloader = dict(dataset=__data)
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
