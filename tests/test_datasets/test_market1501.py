# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest

from mmreid_usl.datasets import Market1501
from mmreid_usl.registry import DATASETS

ROOT = osp.join(osp.dirname(__file__), '..', 'data', 'Market-1501-v15.09.15')


def test_train_relabel_and_arrays():
    ds = Market1501(ROOT, split='train')
    assert len(ds) == 9
    # raw ids 2, 7, 10 -> 0, 1, 2 (sorted)
    np.testing.assert_array_equal(ds.get_pids(), [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert ds.num_pids == 3
    assert ds.get_camids().tolist() == [0, 0, 1, 1, 2, 5, 0, 3, 4]
    assert ds.num_cams == 6
    info = ds.get_data_info(3)
    assert info['img_path'].endswith('0007_c2s3_070952_01.jpg')
    assert info['sample_idx'] == 3 and 'is_query' not in info
    meta = ds.metainfo
    assert meta['dataset_name'] == 'Market1501'
    assert meta['num_pids'] == 3 and meta['num_images'] == 9


def test_query_gallery_test():
    query = Market1501(ROOT, split='query')
    gallery = Market1501(ROOT, split='gallery')
    assert len(query) == 3 and query.get_pids().tolist() == [1, 1, 3]
    # 2 junk (-1) dropped, 2 distractors (0) kept
    assert len(gallery) == 7
    pids = gallery.get_pids()
    assert -1 not in pids and (pids == 0).sum() == 2
    assert gallery.num_pids == 3
    test = Market1501(ROOT, split='test')
    assert len(test) == 10 and test.num_query == 3
    flags = [test.get_data_info(i)['is_query'] for i in range(len(test))]
    assert flags == [True] * 3 + [False] * 7
    assert test.get_pids().tolist() == (
        query.get_pids().tolist() + gallery.get_pids().tolist())
    assert test.test_mode and not Market1501(ROOT).test_mode


def test_lazy_init_and_registry():
    ds = DATASETS.build(
        dict(
            type='Market1501', data_root=ROOT, split='gallery',
            lazy_init=True))
    assert not ds._fully_initialized
    assert 'not fully initialised' in repr(ds)
    assert ds.get_pids().shape == (7, )  # triggers full_init
    assert ds._fully_initialized
    # lazy_init does not touch the file system
    lazy = Market1501('/nonexistent/market', lazy_init=True)
    with pytest.raises(FileNotFoundError, match='/nonexistent/market'):
        len(lazy)


@pytest.mark.parametrize('serialize', [True, False])
def test_subset_keeps_arrays(serialize):
    ds = Market1501(ROOT, serialize_data=serialize)
    sub = ds.get_subset([0, 8])
    assert sub.get_pids().tolist() == [0, 2]
    assert sub.get_camids().tolist() == [0, 4]
    ds2 = Market1501(ROOT, serialize_data=serialize, indices=4)
    assert ds2.get_pids().tolist() == [0, 0, 0, 1]


def test_camera_range_checked(tmp_path):
    train = tmp_path / 'bounding_box_train'
    train.mkdir()
    (train / '0002_c7s1_000451_03.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='camera 7'):
        Market1501(str(tmp_path))


def test_errors(tmp_path):
    with pytest.raises(ValueError, match='split'):
        Market1501(ROOT, split='val')
    with pytest.raises(FileNotFoundError, match='missing_root'):
        Market1501(str(tmp_path / 'missing_root'))
    with pytest.raises(FileNotFoundError, match='bounding_box_train'):
        Market1501(str(tmp_path))
