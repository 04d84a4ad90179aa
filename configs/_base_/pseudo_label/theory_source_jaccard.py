# Copyright (c) mmreid_usl contributors. All rights reserved.
# The clustering of "Theory" / GDS (docs/algorithms/gds.md): every 70 epochs
# (one "iteration" of the paper; 30 of them in 2,100 epochs) the target
# training set is re-clustered from features without augmentation: the
# k-reciprocal Jaccard distance (k1=20, k2=6) mixed with each image's
# distance to the nearest SOURCE feature (lambda=0.1), then DBSCAN
# (min_samples=4, outliers dropped) with an eps computed once, at the first
# clustering, as the mean of the smallest rho=1.6e-3 fraction of all pairwise
# distances, kept afterwards and saved in the checkpoint. The source features
# come from `reference_dataloader` (set by the UDA pair's dataset base).
# The source term is Theory's (reid/rerank.py): on the RAW pool5 of the
# target and source images, min over the source of 1 - exp(-d^2) in float16,
# divided by its maximum (source_feature='raw_fp16'; the hook extracts the
# raw features for it and logs the term's spread, source_term_*). On raw
# ResNet-50 pool5 it is expected to saturate to the constant 0.2; the
# L2-normalised variant, which varies per sample:
# labeler.distance.source_feature='normalized' (with jaccard='sparse'). The
# Jaccard term is Theory's too (jaccard='theory_fp16'): its re-ranking on the
# raw pool5 in float16, dense, bit-identical to reid/rerank.py
# (docs/parity.md); the project's
# sparse Jaccard on L2-normalised features is labeler.distance.jaccard=sparse
# (the MSMT17-target configs use it: the dense matrices of 32,621 images
# would need ~27 GB).
_base_ = ['./dbscan_jaccard.py']

default_hooks = dict(
    pseudo_label=dict(
        interval=70,
        labeler=dict(
            distance=dict(
                _delete_=True,
                type='SourceAwareJaccardDistance',
                k1=20,
                k2=6,
                lambda_source=0.1,
                source_feature='raw_fp16',
                jaccard='theory_fp16'),
            clusterer=dict(
                _delete_=True,
                type='RhoDBSCANClusterer',
                rho=1.6e-3,
                min_samples=4))))
