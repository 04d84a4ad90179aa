# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast, ResNet-50, Market-1501, InfoMap clustering as the
# official README (examples/cluster_contrast_train_usl_infomap.py --eps 0.5
# --k1 15 --k2 4): a kNN graph of 15 entries per image (itself included)
# with cosine-similarity edges >= 0.5, modules of <= 4 images are outliers.
# No Jaccard distance. The official figures: README.md.
_base_ = ['./cluster-contrast_r50_market.py']

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
