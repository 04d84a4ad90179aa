# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 (source) -> DukeMTMC-reID (target, 16,522 training images;
# an epoch is #clusters x 4 samples, or 129 batches of 128 with
# samples_per_epoch='dataset'); everything else as
# ../recipes/gds_uda_pair.py.
_base_ = ['../recipes/gds_uda_pair.py']

__src = dict(type='Market1501', data_root='data/market1501/')
__tgt = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
train_dataloader = dict(dataset=__tgt)
cluster_dataloader = dict(dataset=__tgt)
default_hooks = dict(
    pseudo_label=dict(reference_dataloader=dict(dataset=__src)))
val_dataloader = dict(dataset=__tgt)
test_dataloader = dict(dataset=__tgt)
