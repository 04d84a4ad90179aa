# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(aware) on MSMT17 with the best eps of the ICE supplement's sweep (0.6;
# README.md) instead of the official default 0.55.
_base_ = ['./ice_r50_msmt17.py']

default_hooks = dict(pseudo_label=dict(labeler=dict(clusterer=dict(eps=0.6))))
