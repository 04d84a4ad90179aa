# Copyright (c) mmreid_usl contributors. All rights reserved.
# MSMT17: data/msmt17/ holds either the V1 folders (bounding_box_train/,
# query/, bounding_box_test/) or the V2 lists (list_train.txt, list_val.txt,
# list_query.txt, list_gallery.txt with train/ and test/); detected
# automatically. 400 iterations per epoch as in the official README.
_base_ = ['../recipes/usl_pk.py']

__data = dict(type='MSMT17', data_root='data/msmt17/')
train_dataloader = dict(
    dataset=__data, sampler=dict(samples_per_epoch=400 * 64))
cluster_dataloader = dict(dataset=__data)
val_dataloader = dict(dataset=__data)
test_dataloader = dict(dataset=__data)
