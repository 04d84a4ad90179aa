# Copyright (c) mmreid_usl contributors. All rights reserved.
"""mmcv ``Resize(backend='pillow', interpolation='bicubic')`` is the official
pipelines' resize: PIL bicubic, antialiased when shrinking.

Cluster Contrast and ICE resize PIL images with torchvision's
``T.Resize((h, w), interpolation=3)``, i.e. ``PIL.Image.resize(...,
BICUBIC)``, whose filter support grows with the reduction factor
(antialiasing). OpenCV's bicubic keeps a 4x4 support and aliases when
shrinking (Duke and MSMT17 images are larger than 256x128).
"""
import cv2
import numpy as np
import pytest
from mmcv.transforms import Resize
from PIL import Image

SCALE = (128, 256)  # (w, h), mmcv convention


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    smooth = 127 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[
        ..., None] * np.array([1.0, 0.6, -0.8])
    noise = rng.integers(-40, 41, (h, w, 3))
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)  # BGR order


def _mmcv(img, backend):
    out = Resize(scale=SCALE, interpolation='bicubic', backend=backend)(
        dict(img=img.copy()))
    return out['img']


@pytest.mark.parametrize('size', [(384, 192), (300, 110), (128, 64)])
def test_pillow_backend_is_pil_bicubic(size):
    bgr = _image(*size)
    out = _mmcv(bgr, 'pillow')
    assert out.shape == (256, 128, 3) and out.dtype == np.uint8
    rgb = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))
    ref = np.asarray(rgb.resize(SCALE, Image.BICUBIC))
    np.testing.assert_array_equal(out[..., ::-1], ref)
    # the official code's call: torchvision Resize on the PIL image
    T = pytest.importorskip('torchvision.transforms')
    tv = np.asarray(T.Resize((256, 128), interpolation=3)(rgb))
    np.testing.assert_array_equal(out[..., ::-1], tv)


def test_pillow_antialiases_cv2_aliases():
    # 1-pixel vertical stripes shrunk 3x: antialiased -> flat grey
    stripes = np.zeros((768, 384, 3), np.uint8)
    stripes[:, ::2] = 255
    pil = _mmcv(stripes, 'pillow').astype(float)
    cv = _mmcv(stripes, 'cv2').astype(float)
    ref_cv = cv2.resize(stripes, SCALE, interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(cv, ref_cv)
    assert pil.std() < 5 and abs(pil.mean() - 127.5) < 3
    assert cv.std() > 50  # aliasing: stripes survive at full contrast
