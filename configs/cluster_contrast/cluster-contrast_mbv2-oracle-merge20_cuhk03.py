# Copyright (c) mmreid_usl contributors. All rights reserved.
# ORACLE labels with 20 % of the identities merged in random pairs (drawn
# again at every re-clustering): label noise of the "too few clusters" kind.
# Not an unsupervised result (see cluster-contrast_mbv2-oracle_cuhk03.py).
_base_ = ['./cluster-contrast_mbv2-oracle_cuhk03.py']

default_hooks = dict(
    pseudo_label=dict(labeler=dict(clusterer=dict(merge_ratio=0.2))))
