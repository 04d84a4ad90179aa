# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supervised ReID, the source pre-training (stage 1) of the "Theory" UDA
# baseline and GDS (docs/algorithms/gds.md): ImageNet ResNet-50, average
# pooling ("pool5", 2048-d) + BNNeck ("embedding"), an identity classifier
# (bias-free, on the embedding) with label-smoothed cross-entropy (0.1), and
# the batch-hard triplet loss on the pooled feature. Theory's source model is
# the standard torchvision ResNet-50 (last stride 2) with average pooling
# (open-reid); the GDS supplement calls it "ResNet-50" without more detail.
# The labels are the train split's true ids (label_source='gt', no
# pseudo-label hook); the dataset base sets the sampler to true ids too. The
# inference feature (test, and the clustering / source features of stage 2)
# is the pooled one, as Theory evaluates pool5.
_base_ = ['../default_runtime.py', './reid_r50_avgpool.py']

model = dict(
    type='SupervisedReID',
    # the number of train ids of the source dataset (set by each leaf)
    num_classes=None,
    loss_id=dict(
        type='mmpretrain.LabelSmoothLoss',
        label_smooth_val=0.1,
        mode='original'),
    id_feat='embedding',
    loss_triplet=dict(type='TripletLoss', margin=0.3),
    triplet_feats=('pooled', ),
    # GDS on supervised ReID (GDS supplement Table 4):
    # loss_gds=dict(type='GDSLoss', lambda_h=0.5)
    loss_gds=None,
    gds_feat='pooled',
    eval_feat='pooled',
    label_source='gt',
    test_cfg=dict(feat_source='student'))
