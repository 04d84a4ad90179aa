# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import numpy as np
import torch
from mmengine.registry import init_default_scope

from mmreid_usl.datasets import Market1501
from mmreid_usl.datasets.transforms import MultiView
from mmreid_usl.registry import TRANSFORMS

ROOT = osp.join(
    osp.dirname(__file__), '..', '..', 'data', 'Market-1501-v15.09.15')
H, W = 32, 16
RESIZE = dict(
    type='Resize',
    scale=(W, H),
    keep_ratio=False,
    interpolation='bicubic',
    backend='pillow')
CROP = dict(type='RandomCrop', crop_size=(H, W), padding=10, pad_val=0)
FLIP = dict(type='RandomFlip', prob=0.5, direction='horizontal')
BLUR = dict(
    type='GaussianBlur',
    magnitude_range=(0.1, 2.0),
    magnitude_std='inf',
    prob=0.5)
ERASE = dict(type='ReIDRandomErasing', erase_prob=0.6)
# ICE (docs/algorithms/common.md#augmentations): strong / weak / strong.
STRONG = [RESIZE, CROP, FLIP, BLUR, ERASE]
WEAK = [RESIZE]


def test_blur_radius_range():
    init_default_scope('mmreid_usl')
    blur = TRANSFORMS.build(BLUR)
    np.random.seed(0)
    radii = [blur.random_magnitude() for _ in range(500)]
    assert 0.1 <= min(radii) < 0.2 and 1.9 < max(radii) <= 2.0


def test_multiview_ice_pipeline():
    init_default_scope('mmreid_usl')
    pipeline = [
        dict(type='LoadReIDImage'),
        dict(type='MultiView', transforms=[STRONG, WEAK, STRONG]),
        dict(type='PackReIDInputs')
    ]
    ds = Market1501(ROOT, pipeline=pipeline)
    out = ds[4]
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 3
    for view in out['inputs']:
        assert view.shape == (3, H, W) and view.dtype == torch.uint8
    sample = out['data_samples']
    assert sample.sample_idx == 4 and sample.camid == 2 and sample.pid == 1
    assert sample.img_shape == (H, W)
    # the weak view is deterministic
    again = ds[4]['inputs'][1]
    torch.testing.assert_close(out['inputs'][1], again)


def test_multiview_num_views_and_cc_pipeline():
    init_default_scope('mmreid_usl')
    mv = MultiView([[RESIZE]], num_views=2)
    res = mv(dict(img=np.zeros((16, 8, 3), np.uint8)))
    assert len(res['img']) == 2 and res['img_shape'] == (H, W)
    cc_train = [
        dict(type='LoadReIDImage'), RESIZE, FLIP, CROP,
        dict(type='ReIDRandomErasing', erase_prob=0.5),
        dict(type='PackReIDInputs')
    ]
    ds = Market1501(ROOT, split='test', pipeline=cc_train)
    out = ds[0]
    assert out['inputs'].shape == (3, H, W)
    assert out['data_samples'].is_query is True
