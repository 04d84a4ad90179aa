# Copyright (c) mmreid_usl contributors. All rights reserved.
# Stage 1 of the zero-download domain-adaptation pair (configs/gds/README.md,
# "The synthetic A -> B pair"): supervised training on domain A of the
# synthetic pedestrians (the quick start's dataset, 1,049 images / 100 ids;
# _base_/datasets/synthetic-a_gds-source.py), evaluated on domain A's test
# split. Its checkpoint starts theory_r18_synthetic-a2b.py /
# gds-h_r18_synthetic-a2b.py (`--cfg-options stage1_checkpoint=CKPT`), and
# `tools/test.py configs/gds/theory_r18_synthetic-a2b.py CKPT` is the direct
# transfer to domain B. Same model and losses as the ResNet-50 recipe
# (supervised_r50.py: ID loss with label smoothing 0.1 on the FC-BN-ReLU
# embedding after dropout 0.1, classifier with bias, + batch-hard triplet,
# margin 0.5, on pool5; Adam 3e-4, wd 5e-4, x3 lr on head and classifier).
# Scaled settings (a few minutes on 2 CPU cores, one process):
# - ResNet-18 from random init (nothing to download), last stride 1 (at
#   64x32 input a last stride of 2 leaves a 2x1 map), 512-d pool5 and
#   embedding;
# - 64x32 input, batch 32 = 8 ids x 4 (see the dataset base);
# - 30 epochs of one pass (32 iterations) instead of 150, lr x0.1 after 20;
# - evaluated every 10 epochs.
_base_ = [
    '../_base_/models/supervised_r50.py',
    '../_base_/datasets/synthetic-a_gds-source.py',
    '../_base_/schedules/adam_150e_step50.py',
]

model = dict(
    num_classes=100,
    encoder=dict(
        backbone=dict(depth=18, strides=(1, 2, 2, 1), init_cfg=None)))

param_scheduler = [
    dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True)
]
train_cfg = dict(max_epochs=30, val_interval=10)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=10))
env_cfg = dict(cudnn_benchmark=False)
