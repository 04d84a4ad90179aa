# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Datasets restricted to a set of cameras (``cameras=``)."""
import os.path as osp

import numpy as np
import pytest

from mmreid_usl.datasets import Market1501, PersonX, ReIDFolderDataset
from mmreid_usl.registry import DATASETS

DATA = osp.join(osp.dirname(__file__), '..', 'data')
MARKET = osp.join(DATA, 'Market-1501-v15.09.15')
CUHK03 = osp.join(osp.dirname(__file__), '..', '..', 'data',
                  'cuhk03_detected')


def test_market_train_subset_relabels_within_the_subset():
    # train: 0002 c1,c1,c2 | 0007 c2,c3,c6 | 0010 c1,c4,c5
    ds = Market1501(MARKET, split='train', cameras=[1, 2])
    paths = [osp.basename(ds.get_data_info(i)['img_path'])
             for i in range(len(ds))]
    assert all('_c1' in p or '_c2' in p for p in paths)
    assert len(ds) == 5
    # ids 2, 7, 10 remain -> 0, 1, 2; camids are 0-based file cameras - 1
    np.testing.assert_array_equal(ds.get_pids(), [0, 0, 0, 1, 2])
    assert set(ds.get_camids().tolist()) == {0, 1}
    only = Market1501(MARKET, split='train', cameras=[3, 6])
    np.testing.assert_array_equal(only.get_pids(), [0, 0])  # id 7 only
    assert only.num_pids == 1


def test_test_split_and_registry_build():
    ds = DATASETS.build(
        dict(type='Market1501', data_root=MARKET, split='test',
             cameras=(1, )))
    assert set(ds.get_camids().tolist()) == {0}
    assert ds.num_query == sum(
        1 for i in range(len(ds)) if ds.get_data_info(i)['is_query'])
    full = Market1501(MARKET, split='test')
    assert len(ds) < len(full)


def test_missing_camera_is_a_clear_error():
    with pytest.raises(ValueError, match=r'camera\(s\) \[7\].*\[1, 2, 3'):
        Market1501(MARKET, split='train', cameras=[1, 7])
    with pytest.raises(TypeError, match='cameras'):
        Market1501(MARKET, split='train', cameras=2)
    with pytest.raises(TypeError, match='cameras'):
        Market1501(MARKET, split='train', cameras=[])


def test_personx_uses_its_file_name_numbers():
    root = osp.join(DATA, 'PersonX')
    ds = PersonX(root, split='train', cameras=[3, 12])
    names = [osp.basename(ds.get_data_info(i)['img_path'])
             for i in range(len(ds))]
    assert names and all('_c3_' in n or '_c12_' in n for n in names)
    with pytest.raises(ValueError, match='do not exist'):
        PersonX(root, split='train', cameras=[1])


@pytest.mark.skipif(
    not osp.isdir(CUHK03), reason='data/cuhk03_detected is absent')
def test_cuhk03_cross_camera_domains():
    """The CPU-scale adaptation pair of configs/gds: source = cameras 3-10,
    target = cameras 1-2 (different places)."""
    src = ReIDFolderDataset(CUHK03, split='train', cameras=range(3, 11))
    tgt = ReIDFolderDataset(CUHK03, split='train', cameras=[1, 2])
    query = ReIDFolderDataset(CUHK03, split='query', cameras=[1, 2])
    gallery = ReIDFolderDataset(CUHK03, split='gallery', cameras=[1, 2])
    assert (len(src), src.num_pids) == (2967, 312)
    assert src.get_pids().max() == 311
    assert len(tgt) == 4109
    assert (len(query), len(gallery)) == (842, 3226)
