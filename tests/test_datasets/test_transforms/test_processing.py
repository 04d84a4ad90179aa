# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest

from mmreid_usl.datasets.transforms import (REID_ERASE_FILL_BGR,
                                            ReIDRandomErasing)
from mmreid_usl.registry import TRANSFORMS


def test_fill_maps_to_imagenet_mean_after_normalisation():
    mean_bgr = np.array([0.406, 0.456, 0.485])
    std_bgr = np.array([0.225, 0.224, 0.229])
    normed = (np.array(REID_ERASE_FILL_BGR) / 255 - mean_bgr) / std_bgr
    np.testing.assert_allclose(normed, mean_bgr, atol=0.01)


def test_erasing_area_and_fill():
    np.random.seed(0)
    t = ReIDRandomErasing(erase_prob=1.0)
    fractions = []
    for _ in range(200):
        img = np.zeros((128, 64, 3), np.uint8)
        out = t(dict(img=img))['img']
        mask = (out != 0).any(-1)
        assert (out[mask] == REID_ERASE_FILL_BGR).all()
        rows, cols = np.nonzero(mask)
        # one rectangle, strictly smaller than the image in both sides
        assert mask.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
        assert np.ptp(rows) + 1 < 128 and np.ptp(cols) + 1 < 64
        fractions.append(mask.mean())
    assert 0.015 < min(fractions) and max(fractions) < 0.42


def test_probability_and_registry():
    np.random.seed(1)
    t = TRANSFORMS.build(dict(type='ReIDRandomErasing', erase_prob=0.0))
    img = np.zeros((8, 4, 3), np.uint8)
    assert (t(dict(img=img))['img'] == 0).all()
    assert 'max_attempts=100' in repr(t)


def test_no_attempt_fits():
    t = ReIDRandomErasing(
        erase_prob=1.0,
        min_area_ratio=0.99,
        max_area_ratio=1.0,
        aspect_range=(1.0, 1.0))
    img = np.zeros((10, 10, 3), np.uint8)
    assert (t(dict(img=img))['img'] == 0).all()
    with pytest.raises(AssertionError):
        ReIDRandomErasing(min_area_ratio=0.5, max_area_ratio=0.1)
