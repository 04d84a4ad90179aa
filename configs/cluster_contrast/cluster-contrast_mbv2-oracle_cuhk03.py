# Copyright (c) mmreid_usl contributors. All rights reserved.
# ORACLE labels (Cluster Contrast paper, Table 5): the CPU-scale Cluster
# Contrast run of cluster-contrast_mbv2_cuhk03.py with the same data, budget
# and memory, but the clusterer returns the TRUE identities of the training
# images (OracleClusterer; no distance is computed). An upper bound for the
# pseudo-labels, not an unsupervised result: the run logs "ORACLE labels" at
# every re-clustering and its config name says "oracle". The label-noise
# variants merge or split 20 % of the identities
# (cluster-contrast_mbv2-oracle-merge20_cuhk03.py, -oracle-split20_).
# Figures: configs/cluster_contrast/README.md.
_base_ = ['./cluster-contrast_mbv2_cuhk03.py']

default_hooks = dict(
    pseudo_label=dict(
        labeler=dict(
            distance=None,
            clusterer=dict(
                _delete_=True,
                type='OracleClusterer',
                merge_ratio=0.0,
                split_ratio=0.0))))
