# Copyright (c) mmreid_usl contributors. All rights reserved.
# DukeMTMC-reID (source) -> Market-1501 (target, 12,936 training images; an
# epoch is #clusters x 4 samples, or 101 batches of 128 with
# samples_per_epoch='dataset'); the pair recipe ../recipes/gds_uda_pair.py.
_base_ = ['../recipes/gds_uda_pair.py']

__src = dict(type='DukeMTMCReID', data_root='data/dukemtmc-reid/')
__tgt = dict(type='Market1501', data_root='data/market1501/')
train_dataloader = dict(dataset=__tgt)
cluster_dataloader = dict(dataset=__tgt)
default_hooks = dict(
    pseudo_label=dict(reference_dataloader=dict(dataset=__src)))
val_dataloader = dict(dataset=__tgt)
test_dataloader = dict(dataset=__tgt)
