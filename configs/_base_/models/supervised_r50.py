# Copyright (c) mmreid_usl contributors. All rights reserved.
# Supervised ReID, the source pre-training (stage 1) of the "Theory" UDA
# baseline and GDS (docs/algorithms/gds.md, configs/gds/README.md): ImageNet
# ResNet-50, average pooling ("pool5", 2048-d), Theory's embedding head
# (FC 2048 -> 2048 without bias -> BN -> ReLU, reid_r50_avgpool.py), and as
# in Theory's source_train.py: dropout 0.1 then an identity classifier WITH
# bias on the embedding, and the batch-hard triplet loss (margin 0.5) on
# pool5. The identity loss is cross-entropy with label smoothing 0.1 (GDS
# supplement Sec. 3; Theory's code uses plain cross-entropy:
# loss_id.label_smooth_val=0). Theory's source model is the standard
# torchvision ResNet-50 (last stride 2) with average pooling (open-reid);
# the GDS supplement calls it "ResNet-50" without more detail.
# The labels are the train split's true ids (labels_from='gt', no
# pseudo-label hook); the dataset base sets the sampler to true ids too.
# The inference feature (test, and the clustering / source features of
# stage 2) is the pooled one, as Theory evaluates pool5: raw, ranked by the
# squared Euclidean distance (test_cfg.normalize=False, Theory's
# reid/evaluators.py; True: L2-normalised, as the other methods).
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
    id_dropout=0.1,
    classifier_bias=True,
    loss_triplet=dict(type='TripletLoss', margin=0.5, mining='batch_hard'),
    triplet_feats=('pooled', ),
    # GDS on supervised ReID (GDS supplement Table 4):
    # loss_gds=dict(type='GDSLoss', lambda_h=0.5)
    loss_gds=None,
    gds_feat='pooled',
    eval_feat='pooled',
    labels_from='gt',
    test_cfg=dict(encoder='student', normalize=False))
