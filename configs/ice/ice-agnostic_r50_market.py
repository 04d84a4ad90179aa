# Copyright (c) mmreid_usl contributors. All rights reserved.
# ICE(agnostic): no camera labels, no cross-camera proxy loss (the author's
# recipe in ICE issue #4: remove loss_cam). The paper's row: README.md.
_base_ = ['./ice_r50_market.py']

model = dict(loss_cross=None)
