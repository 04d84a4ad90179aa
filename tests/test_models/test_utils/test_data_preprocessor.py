# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch

from mmreid_usl.models import ReIDDataPreprocessor
from mmreid_usl.structures import ReIDDataSample


def _pre():
    return ReIDDataPreprocessor(
        mean=[1., 2., 3.], std=[2., 2., 2.], to_rgb=True)


def test_single_view_normalised_rgb():
    img = torch.arange(2 * 3 * 4 * 2, dtype=torch.uint8).reshape(2, 3, 4, 2)
    out = _pre()(dict(inputs=img, data_samples=[ReIDDataSample()] * 2))
    expected = (img[:, [2, 1, 0]].float() -
                torch.tensor([1., 2., 3.]).view(1, 3, 1, 1)) / 2
    torch.testing.assert_close(out['inputs'], expected)


def test_multi_view_stacked_as_vbchw():
    views = [torch.full((2, 3, 4, 2), v, dtype=torch.uint8) for v in (0, 5, 9)]
    out = _pre()(dict(inputs=views, data_samples=[ReIDDataSample()] * 2))
    assert out['inputs'].shape == (3, 2, 3, 4, 2)
    torch.testing.assert_close(out['inputs'][1, 0, 0],
                               torch.full((4, 2), (5 - 1) / 2))
