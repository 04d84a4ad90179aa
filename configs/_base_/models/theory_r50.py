# Copyright (c) mmreid_usl contributors. All rights reserved.
# The adaptation stage of "Theory" (Song et al., Pattern Recognition 2020),
# the baseline of GDS (docs/algorithms/gds.md, configs/gds/README.md), as
# Theory's code (lsongx/DomainAdaptiveReID, selftraining.py) builds it: the
# stage-1 network (same encoder and FC-BN-ReLU embedding head as
# supervised_r50.py, loaded from `stage1_checkpoint`, its classifier left
# out)
# fine-tuned on the clustered target images with two triplet losses
# (margin 0.5), on pool5 AND on the embedding, in Theory's "semi" mining
# (reid/loss/triplet.py, use_semi=True): every anchor with every LATER
# positive of its P x K block against the anchor's hardest negative, the
# mean over the P*K*(K-1)/2 terms; K is read from the batch (the sampler's
# num_instances). Batch-hard instead: loss_triplet.mining='batch_hard'.
# GDS adds `loss_gds` (gds_r50.py). Inference (test,
# clustering and the source reference bank) uses the pooled feature,
# Theory's pool5; the test ranks the raw pool5 by the squared Euclidean
# distance as Theory's evaluator (test_cfg.normalize=True: L2-normalised).
#
# Only the model: the pseudo-labelling of a UDA pair needs the source domain's
# features, so the pair's data recipe (_base_/recipes/gds_uda_pair.py, under
# every _base_/datasets/*2*_gds.py) brings the PseudoLabelHook
# (pseudo_label/theory_source_jaccard.py) with its reference dataloader, and
# the runtime with it: mmengine refuses two bases that both set
# `default_hooks`, and the reference loader is data.
_base_ = ['./reid_r50_avgpool.py']

model = dict(
    type='Theory',
    loss_triplet=dict(type='TripletLoss', margin=0.5, mining='semi'),
    triplet_feats=('pooled', 'embedding'),
    loss_gds=None,
    gds_feat='pooled',
    eval_feat='pooled',
    labels_from='pseudo',
    cluster_encoder='student',
    test_cfg=dict(encoder='student', normalize=False))

# The adaptation starts from the stage-1 encoder: `--cfg-options
# stage1_checkpoint=CKPT` (the encoder's init_cfg becomes
# dict(type='Pretrained', checkpoint=CKPT, prefix='encoder.'), checked to
# fit; mmreid_usl/engine/checkpointing/stage1.py). A new run without it (and
# without load_from) stops with the stage-1 command of the leaf's
# `stage1_config`.
stage1_checkpoint = None
