# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 as the labelled source (12,936 images / 751 ids -> 101
# batches of 128 per epoch) with the stage-1 recipe of Theory / GDS
# (../recipes/gds_source.py).
_base_ = ['../recipes/gds_source.py']

__data = dict(type='Market1501', data_root='data/market1501/')
train_dataloader = dict(
    dataset=__data, sampler=dict(samples_per_epoch=101 * 128))
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
