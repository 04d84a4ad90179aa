# Copyright (c) mmreid_usl contributors. All rights reserved.
# Re-cluster the training set before every epoch: k-reciprocal Jaccard
# distance (k1=30, k2=6) + DBSCAN (min_samples=4), outliers dropped (§0.4-0.5).
# It extends the runtime (both set `default_hooks`, and MMEngine forbids the
# same key in two sibling bases), so leaf configs list this file instead of
# default_runtime.py.
_base_ = ['../default_runtime.py']

default_hooks = dict(
    pseudo_label=dict(
        type='PseudoLabelHook',
        interval=1,
        feature_source='student',
        distance=dict(type='JaccardDistance', k1=30, k2=6),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=4)))
