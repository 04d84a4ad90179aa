# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmreid_usl.datasets.transforms import PackReIDInputs
from mmreid_usl.structures import ReIDDataSample


def test_pack_single_and_multi_view():
    img = np.random.randint(0, 255, (16, 8, 3), dtype=np.uint8)
    results = dict(
        img=img,
        pid=7,
        camid=2,
        img_path='a.jpg',
        sample_idx=3,
        img_shape=(16, 8),
        is_query=True,
        ori_shape=(20, 9))
    out = PackReIDInputs()(results)
    assert out['inputs'].dtype == torch.uint8
    assert out['inputs'].shape == (3, 16, 8)
    torch.testing.assert_close(out['inputs'][:, 1, 2],
                               torch.from_numpy(img[1, 2]))
    sample = out['data_samples']
    assert isinstance(sample, ReIDDataSample) and sample.pid == 7
    assert sample.gt_label.shape == (1, )
    assert sample.metainfo == dict(
        sample_idx=3,
        camid=2,
        img_path='a.jpg',
        is_query=True,
        img_shape=(16, 8))
    del results['is_query']
    results['img'] = [img, img.copy()]
    out = PackReIDInputs()(results)
    assert isinstance(out['inputs'], list) and len(out['inputs']) == 2
    assert out['inputs'][1].shape == (3, 16, 8)
    assert 'is_query' not in out['data_samples']
    with pytest.raises(KeyError, match='img'):
        PackReIDInputs()(dict(pid=1))
