# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest

from mmreid_usl.datasets import VeRi776
from mmreid_usl.registry import DATASETS

ROOT = osp.join(osp.dirname(__file__), '..', 'data', 'VeRi')


def test_train_split():
    ds = DATASETS.build(dict(type='VeRi776', data_root=ROOT))
    assert len(ds) == 7 and ds.metainfo['dataset_name'] == 'VeRi776'
    # raw ids 1, 4, 5 -> 0, 1, 2; c001..c020 -> 0..19
    assert ds.get_pids().tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert ds.get_camids().tolist() == [0, 1, 18, 14, 19, 2, 3]
    assert ds.get_data_info(0)['img_path'] == osp.join(
        ROOT, 'image_train', '0001_c001_00016450_0.jpg')


def test_query_gallery_test():
    query = VeRi776(ROOT, split='query')
    assert query.get_pids().tolist() == [2, 10]
    assert query.get_camids().tolist() == [1, 13]
    gallery = VeRi776(ROOT, split='gallery')
    assert len(gallery) == 5
    assert gallery.get_data_info(0)['img_path'].startswith(
        osp.join(ROOT, 'image_test'))
    test = VeRi776(ROOT, split='test')
    assert len(test) == 7 and test.num_query == 2


def test_ranges_checked(tmp_path):
    train = tmp_path / 'image_train'
    train.mkdir()
    (train / '0001_c021_00016450_0.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='camera 21'):
        VeRi776(str(tmp_path))
    (train / '0001_c021_00016450_0.jpg').unlink()
    (train / '0777_c001_00016450_0.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='pid 777'):
        VeRi776(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='image_query'):
        VeRi776(str(tmp_path), split='query')
