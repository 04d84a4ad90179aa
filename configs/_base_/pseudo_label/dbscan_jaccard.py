# Copyright (c) mmreid_usl contributors. All rights reserved.
# Re-label the training set before every epoch: k-reciprocal Jaccard distance
# (k1=30, k2=6) + DBSCAN (min_samples=4), outliers dropped
# (docs/algorithms/common.md). A run whose clustering has fewer than two
# clusters stops with a message (labeler.on_degenerate='skip' skips the
# epoch instead). The model bases of unsupervised methods inherit this file
# (and through it default_runtime.py); a child overrides e.g.
# `default_hooks.pseudo_label.labeler.clusterer.eps` by key.
_base_ = ['../default_runtime.py']

default_hooks = dict(
    pseudo_label=dict(
        type='PseudoLabelHook',
        interval=1,
        labeler=dict(
            type='PseudoLabeler',
            distance=dict(type='JaccardDistance', k1=30, k2=6),
            clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=4),
            min_clusters=2,
            on_degenerate='raise')))
