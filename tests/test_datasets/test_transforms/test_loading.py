# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest

from mmreid_usl.datasets.transforms import LoadReIDImage

IMG = osp.join(
    osp.dirname(__file__), '..', '..', 'data', 'Market-1501-v15.09.15',
    'query', '0001_c1s1_001051_00.jpg')


def test_load_ok():
    out = LoadReIDImage()(dict(img_path=IMG))
    assert out['img'].shape == (16, 8, 3) and out['img_shape'] == (16, 8)


def test_missing_and_corrupt(tmp_path):
    missing = str(tmp_path / 'nope.jpg')
    with pytest.raises(FileNotFoundError, match='nope.jpg'):
        LoadReIDImage()(dict(img_path=missing))
    bad = tmp_path / 'bad.jpg'
    bad.write_bytes(b'not a jpeg')
    for backend in ('cv2', 'pillow'):
        with pytest.raises(ValueError, match='bad.jpg'):
            LoadReIDImage(imdecode_backend=backend)(dict(img_path=str(bad)))
    assert LoadReIDImage(ignore_empty=True)(dict(img_path=missing)) is None
