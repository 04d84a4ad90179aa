# Copyright (c) mmreid_usl contributors. All rights reserved.
# The Theory / GDS baseline at CPU scale on this machine's real data:
# data/cuhk03_detected cameras 3-10 (labelled source) -> cameras 1-2
# (unlabelled target, 4,109 training images; tested on the cameras-1-2 query
# / gallery, 842 / 3,226), from the stage-1 checkpoint of
# source-pretrain_mbv2_cuhk03-cam3to10.py (`stage1_checkpoint`). The
# evaluation before training (ValBeforeTrainHook, "epoch 0") is the direct
# transfer.
# Unchanged from the paper recipe and Theory's code (configs/gds/README.md):
# source-aware Jaccard (lambda 0.1, Theory's raw-feature float16 source
# term) + DBSCAN (min_samples 4) with the rho = 1.6e-3 eps computed once,
# Theory's "semi" triplet losses (margin 0.5) on the pooled feature and the
# FC-BN-ReLU embedding, Adam with a constant lr and no weight decay, P x K
# with K = 4, an epoch of #clusters x 4 samples (outliers excluded),
# evaluation on the raw pooled feature. Scaled settings (one process on 2
# CPU cores):
# - MobileNetV2 at 192x96, batch 64 = 16 pseudo-ids x 4 (see the stage-1
#   config);
# - k1 = 15 instead of 20: ~9.7 images per id here (~17 on Market); the
#   project's CUHK03 measurements (docs/benchmarks.md) found k1 = 15 keeps
#   k-reciprocal sets within an identity at this density (k2 = 6 kept). rho
#   is the paper's 1.6e-3 (13.5k of the 8.4M target pairs, ~3.3 per image;
#   the true same-id fraction here is 2.1e-3);
# - 5 clusterings x 3 epochs (an epoch of #clusters x 4 samples: ~20-30
#   iterations of 64 for 300-500 clusters; 422 true ids) instead of 30 x 70
#   epochs (~30-45k iterations of 128 on Market): a clustering costs ~1 min
#   here (7,076 images extracted), so fewer, with ~60-90 iterations each;
# - lr 1e-4 instead of 6e-5: ~1/100 of the paper's iterations;
# - evaluated at initialisation, every 2 clusterings and at the end.
_base_ = [
    '../_base_/models/theory_mbv2.py',
    '../_base_/datasets/cuhk03_detected-cam3to10-to-cam1to2_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

# stage 1, whose checkpoint this config adapts: --cfg-options
# stage1_checkpoint=CKPT (configs/gds/README.md)
stage1_config = 'configs/gds/source-pretrain_mbv2_cuhk03-cam3to10.py'

optim_wrapper = dict(optimizer=dict(lr=1e-4))
train_cfg = dict(max_epochs=15, val_interval=6)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=3),
    pseudo_label=dict(interval=3, labeler=dict(distance=dict(k1=15))))
custom_hooks = [dict(type='ValBeforeTrainHook')]
env_cfg = dict(cudnn_benchmark=False)
