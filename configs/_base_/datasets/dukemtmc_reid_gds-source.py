# Copyright (c) mmreid_usl contributors. All rights reserved.
# DukeMTMC-reID as the labelled source (16,522 images / 702 ids -> 129
# batches of 128 per epoch); everything else as
# ../recipes/gds_source.py.
_base_ = ['../recipes/gds_source.py']

__data = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(
    dataset=__data, sampler=dict(samples_per_epoch=129 * 128))
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
