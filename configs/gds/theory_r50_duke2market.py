# Copyright (c) mmreid_usl contributors. All rights reserved.
# The "Theory" UDA baseline as GDS reports it ("Baseline"), DukeMTMC-reID ->
# Market-1501 (docs/algorithms/gds.md): from the stage-1 Duke checkpoint,
# re-cluster the Market training images every 70 epochs (source-aware
# Jaccard + DBSCAN with the rho=1.6e-3 eps) and fine-tune with batch-hard
# triplets (margin 0.5) on the pooled feature and the embedding; Adam 6e-5
# constant (GDS supplement), 30 x 70 = 2,100 epochs, evaluated every 70.
# Theory's own optimiser (SGD): theory-sgd_r50_duke2market.py.
_base_ = [
    '../_base_/models/theory_r50.py',
    '../_base_/datasets/duke2market_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1: tools/train.py configs/gds/source-pretrain_r50_duke.py
load_from = 'work_dirs/source-pretrain_r50_duke/epoch_150.pth'
# a checkpoint every 10 epochs (resume point), not every epoch
default_hooks = dict(checkpoint=dict(interval=10))
