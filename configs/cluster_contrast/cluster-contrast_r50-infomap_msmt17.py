# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, MSMT17, InfoMap clustering as the official
# README (--iters 400 --eps 0.5 --k1 15 --k2 4): see
# cluster-contrast_r50-infomap_market.py. The official figures: README.md.
_base_ = ['./cluster-contrast_r50_msmt17.py']

default_hooks = dict(
    pseudo_label=dict(
        labeler=dict(
            distance=None,
            clusterer=dict(
                _delete_=True,
                type='InfomapClusterer',
                k=15,
                min_sim=0.5,
                min_cluster_size=5))))
