# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast as written in the paper
# (docs/algorithms/cluster_contrast.md): batch-hard memory update (Eq. 2),
# memory initialised from a random instance (Eq. 1), average pooling, eps 0.4.
# The paper's figures: README.md.
_base_ = ['./cluster-contrast_r50_market.py']

model = dict(
    encoder=dict(
        pooling=dict(_delete_=True, type='mmpretrain.GlobalAveragePooling')),
    memory=dict(update_mode='hard', init_mode='random'))
default_hooks = dict(pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.4))))
