# Copyright (c) mmreid_usl contributors. All rights reserved.
# The "Theory" UDA baseline as GDS reports it ("Baseline"), DukeMTMC-reID ->
# Market-1501 (docs/algorithms/gds.md): from the stage-1 Duke checkpoint
# (encoder + FC-BN-ReLU embedding head; the classifier is dropped),
# re-cluster the Market training images every 70 epochs (source-aware
# Jaccard with Theory's raw-pool5 float16 source term + DBSCAN with the
# rho=1.6e-3 eps) and fine-tune with Theory's "semi" triplets (every later
# positive of a P x K block against the anchor's hardest negative, margin
# 0.5) on pool5 and the embedding, epochs of #clusters x 4 samples; Adam
# 6e-5 constant, no weight decay (GDS supplement / Theory's code), 30 x 70
# = 2,100 epochs, evaluated every 70 for monitoring (report the last);
# tested on raw pool5 with the squared Euclidean distance (Theory).
# Every choice and its switch: configs/gds/README.md.
# Theory's own optimiser (SGD): theory-sgd_r50_duke2market.py.
_base_ = [
    '../_base_/models/theory_r50.py',
    '../_base_/datasets/duke2market_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1, whose checkpoint this config adapts: --cfg-options
# stage1_checkpoint=CKPT (configs/gds/README.md)
stage1_config = 'configs/gds/source-pretrain_r50_duke.py'
# a checkpoint every 10 epochs (resume point), not every epoch
default_hooks = dict(checkpoint=dict(interval=10))
