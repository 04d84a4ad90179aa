# Copyright (c) mmreid_usl contributors. All rights reserved.
# The adaptation stage of "Theory" (Song et al., Pattern Recognition 2020),
# the baseline of GDS (docs/algorithms/gds.md): the stage-1 network (same
# encoder as supervised_r50.py, loaded with `load_from`, its classifier
# dropped) fine-tuned on the clustered target images with batch-hard triplet
# losses (margin 0.5) on the pooled feature AND on the embedding. GDS / GDS-H
# add `loss_gds` (see configs/gds/gds*_*.py). Inference (test, clustering and
# the source reference bank) uses the pooled feature, Theory's pool5.
#
# Only the model: the pseudo-labelling of a UDA pair needs the source domain's
# features, so the pair's dataset base (_base_/datasets/*2*_gds.py) brings
# the PseudoLabelHook (pseudo_label/theory_source_jaccard.py) with its
# reference dataloader, and the runtime with it.
_base_ = ['./reid_r50_avgpool.py']

model = dict(
    type='Theory',
    loss_triplet=dict(type='TripletLoss', margin=0.5),
    triplet_feats=('pooled', 'embedding'),
    loss_gds=None,
    gds_feat='pooled',
    eval_feat='pooled',
    label_source='pseudo',
    cluster_feat_source='student',
    test_cfg=dict(feat_source='student'))
