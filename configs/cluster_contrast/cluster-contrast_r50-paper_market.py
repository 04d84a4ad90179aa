# Copyright (c) mmreid_usl contributors. All rights reserved.
# Cluster Contrast as written in the paper (§1.7): batch-hard memory update
# (Eq. 2), memory initialised from a random instance (Eq. 1), average pooling,
# eps 0.4. Paper Table: 82.6 mAP / 93.0 R1 on Market-1501.
_base_ = ['./cluster-contrast_r50_market.py']

model = dict(
    encoder=dict(neck=dict(_delete_=True, type='mmpretrain.GlobalAveragePooling')),
    memory=dict(update_mode='hard'),
    memory_init='random')
default_hooks = dict(pseudo_label=dict(clusterer=dict(eps=0.4)))
