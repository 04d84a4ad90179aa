# Copyright (c) mmreid_usl contributors. All rights reserved.
# The official code with --use-hard (batch-hard update, eps 0.4), as in the
# shipped IBN log; GeM pooling kept.
_base_ = ['./cluster-contrast_r50_market.py']

model = dict(memory=dict(update_mode='hard'))
default_hooks = dict(pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.4))))
