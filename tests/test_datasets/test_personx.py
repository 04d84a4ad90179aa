# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest

from mmreid_usl.datasets import PersonX
from mmreid_usl.registry import DATASETS

ROOT = osp.join(osp.dirname(__file__), '..', 'data', 'PersonX')


def test_train_cameras_mapped_and_relabelled():
    ds = DATASETS.build(dict(type='PersonX', data_root=ROOT))
    assert len(ds) == 8 and ds.metainfo['dataset_name'] == 'PersonX'
    # raw ids 1, 5, 9 -> 0, 1, 2; cameras 3, 4, 8, 10, 11, 12 -> 0..5
    assert ds.get_pids().tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert ds.get_camids().tolist() == [0, 1, 2, 3, 4, 5, 5, 0]  # by path
    assert ds.num_cams == 6
    assert ds.get_data_info(3)['img_path'].endswith('0005_c10_0001.jpg')


def test_query_gallery_test():
    test = PersonX(ROOT, split='test')
    assert len(test) == 6 and test.num_query == 2
    assert test.get_pids().tolist() == [411, 412, 411, 411, 412, 413]
    assert test.get_camids().tolist() == [0, 3, 4, 1, 2, 5]


def test_unknown_camera_is_an_error(tmp_path):
    train = tmp_path / 'bounding_box_train'
    train.mkdir()
    (train / '0001_c5_0001.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='camera 5 .* PersonX cameras'):
        PersonX(str(tmp_path))
