# Copyright (c) mmreid_usl contributors. All rights reserved.
# MSMT17 as the labelled source (train + val: 32,621 images / 1,041 ids ->
# 254 batches of 128 per epoch); everything else as
# ../recipes/gds_source.py.
_base_ = ['../recipes/gds_source.py']

__data = dict(type='MSMT17', data_root='data/msmt17/')
train_dataloader = dict(
    dataset=__data, sampler=dict(samples_per_epoch=254 * 128))
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
