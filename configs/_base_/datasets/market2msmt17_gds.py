# Copyright (c) mmreid_usl contributors. All rights reserved.
# Market-1501 (source) -> MSMT17 (target, train + val: 32,621 images; an
# epoch is #clusters x 4 samples, or 254 batches of 128 with
# samples_per_epoch='dataset'); everything else as
# ../recipes/gds_uda_pair.py.
_base_ = ['../recipes/gds_uda_pair.py']

__src = dict(type='Market1501', data_root='data/market1501/')
__tgt = dict(type='MSMT17', data_root='data/msmt17/')
train_dataloader = dict(dataset=__tgt)
cluster_dataloader = dict(dataset=__tgt)
# MSMT17 as the target: Theory's dense float16 re-ranking of 32,621 images
# would hold ~27 GB of N x N matrices; the sparse Jaccard on L2-normalised
# features instead (configs/gds/README.md)
default_hooks = dict(
    pseudo_label=dict(
        reference_dataloader=dict(dataset=__src),
        labeler=dict(distance=dict(jaccard='sparse'))))
val_dataloader = dict(dataset=__tgt)
test_dataloader = dict(dataset=__tgt)
