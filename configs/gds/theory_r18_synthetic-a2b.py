# Copyright (c) mmreid_usl contributors. All rights reserved.
# The Theory / GDS baseline on the zero-download synthetic pair: domain A of
# the synthetic pedestrians (labelled source) -> domain B (unlabelled target,
# other identities, palette, cameras, backgrounds, haze and blur;
# _base_/datasets/synthetic-a2b_gds.py), from the stage-1 checkpoint of
# source-pretrain_r18_synthetic-a.py (`--cfg-options stage1_checkpoint=CKPT`).
# The evaluation before training (ValBeforeTrainHook, "epoch 0") is the direct
# transfer, as `tools/test.py` of this config with the stage-1 checkpoint.
# This pair checks the two-stage machinery end to end on CPU in minutes; it
# says nothing about the paper's claims (configs/gds/README.md).
# Unchanged from the paper recipe and Theory's code (configs/gds/README.md):
# source-aware Jaccard (lambda 0.1, Theory's dense float16 re-ranking and
# raw-feature float16 source term) + DBSCAN (min_samples 4) with the eps
# computed once from rho, Theory's "semi" triplet losses (margin 0.5) on
# pool5 and the FC-BN-ReLU embedding, Adam with a constant lr and no weight
# decay, P x K with K = 4, an epoch of #clusters x 4 samples (outliers
# excluded), evaluation on the raw pool5. Scaled settings (one process):
# - ResNet-18 (last stride 1) at 64x32, batch 32 = 8 pseudo-ids x 4 (see
#   the stage-1 config);
# - k1 = 15 instead of 20: ~10.5 images per id here (~17 on Market), as the
#   quick start's Cluster Contrast config (k2 = 6 kept);
# - rho = 1.2e-2 instead of 1.6e-3. rho is the fraction of all pairs whose
#   mean distance becomes eps; the paper's 1.6e-3 is ~1.3x the true
#   same-identity fraction of Market's training set (~104k of 83.7M pairs,
#   1.25e-3). Here 100 ids share 1,052 images, so that fraction is 9.4e-3
#   (5,211 of 553k pairs) and 1.6e-3 would put eps among the closest ~1/6 of
#   the same-id pairs (most images outliers); 1.2e-2 keeps the paper's ratio;
# - 8 clusterings x 2 epochs (~12 iterations each for ~100 clusters) instead
#   of 30 x 70; a clustering (2,101 images extracted, a dense 1,052^2
#   re-ranking) takes seconds;
# - lr 1e-4 instead of 6e-5 (~1/500 of the paper's iterations);
# - evaluated at initialisation, every 2 clusterings and at the end.
_base_ = [
    '../_base_/models/theory_r50.py',
    '../_base_/datasets/synthetic-a2b_gds.py',
    '../_base_/schedules/adam_2100e_const6e-5.py',
]

model = dict(
    encoder=dict(
        backbone=dict(depth=18, strides=(1, 2, 2, 1), init_cfg=None)))

# stage 1, whose checkpoint this config adapts: --cfg-options
# stage1_checkpoint=CKPT (configs/gds/README.md)
stage1_config = 'configs/gds/source-pretrain_r18_synthetic-a.py'

optim_wrapper = dict(optimizer=dict(lr=1e-4))
train_cfg = dict(max_epochs=16, val_interval=4)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=4),
    pseudo_label=dict(
        interval=2,
        labeler=dict(distance=dict(k1=15), clusterer=dict(rho=1.2e-2))))
custom_hooks = [dict(type='ValBeforeTrainHook')]
env_cfg = dict(cudnn_benchmark=False)
