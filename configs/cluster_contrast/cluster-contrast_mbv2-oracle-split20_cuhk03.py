# Copyright (c) mmreid_usl contributors. All rights reserved.
# ORACLE labels with 20 % of the identities split in two (drawn again at every
# re-clustering): label noise of the "too many clusters" kind. Not an
# unsupervised result (see cluster-contrast_mbv2-oracle_cuhk03.py).
_base_ = ['./cluster-contrast_mbv2-oracle_cuhk03.py']

default_hooks = dict(
    pseudo_label=dict(labeler=dict(clusterer=dict(split_ratio=0.2))))
