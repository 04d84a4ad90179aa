# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest

from mmreid_usl.datasets import DukeMTMCReID

ROOT = osp.join(osp.dirname(__file__), '..', 'data', 'DukeMTMC-reID')


def test_duke():
    train = DukeMTMCReID(ROOT)
    assert len(train) == 7 and train.num_pids == 3
    assert train.get_camids().tolist() == [1, 1, 5, 0, 7, 0, 4]
    test = DukeMTMCReID(ROOT, split='test')
    assert len(test) == 7 and test.num_query == 2
    assert test.metainfo['dataset_name'] == 'DukeMTMCReID'


def test_duke_camera_range(tmp_path):
    (tmp_path / 'query').mkdir()
    (tmp_path / 'query' / '0005_c9_f0046985.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='camera 9'):
        DukeMTMCReID(str(tmp_path), split='query')
