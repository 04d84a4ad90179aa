# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp
import shutil

import pytest

from mmreid_usl.datasets import MSMT17

DATA = osp.join(osp.dirname(__file__), '..', 'data')
V1 = osp.join(DATA, 'MSMT17_V1')
V2 = osp.join(DATA, 'MSMT17_V2')


def test_v1_folders():
    ds = MSMT17(V1)
    assert ds.layout == 'folders'
    assert len(ds) == 5 and ds.num_pids == 2 and ds.num_cams == 4
    test = MSMT17(V1, split='test')
    assert len(test) == 6 and test.num_query == 2


def test_v2_lists():
    train = MSMT17(V2)
    assert train.layout == 'lists'
    # list_train (5) + list_val (3); raw ids 0, 1, 2 -> 0, 1, 2
    assert len(train) == 8 and train.num_pids == 3
    info = train.get_data_info(0)
    # the face-masked folders of the V2 release, as ICE reads them
    assert info['img_path'] == osp.join(
        V2, 'mask_train_v2', '0000/0000_000_01_0303morning_0015_0.jpg')
    assert sorted(set(train.get_camids().tolist())) == [0, 6, 9, 11, 13, 14]
    assert len(MSMT17(V2, use_val_in_train=False)) == 5
    query = MSMT17(V2, split='query')
    assert query.get_pids().tolist() == [0, 1]
    assert query.get_camids().tolist() == [4, 1]
    assert query.get_data_info(0)['img_path'].startswith(
        osp.join(V2, 'mask_test_v2'))
    test = MSMT17(V2, split='test')
    assert len(test) == 7 and test.num_query == 2


def test_lists_with_v1_folders(tmp_path):
    # The MSMT17_V1 release: the same lists with train/ and test/.
    root = tmp_path / 'MSMT17_V1'
    shutil.copytree(V2, root)
    (root / 'mask_train_v2').rename(root / 'train')
    (root / 'mask_test_v2').rename(root / 'test')
    train = MSMT17(str(root))
    assert train.layout == 'lists' and len(train) == 8
    assert train.get_data_info(0)['img_path'] == osp.join(
        str(root), 'train', '0000/0000_000_01_0303morning_0015_0.jpg')
    test = MSMT17(str(root), split='test')
    assert len(test) == 7
    assert test.get_data_info(0)['img_path'].startswith(
        osp.join(str(root), 'test'))
    shutil.rmtree(root / 'test')
    with pytest.raises(FileNotFoundError,
                       match=r"split 'query'.*\['test', 'mask_test_v2'\]"):
        MSMT17(str(root), split='query')


def test_v2_errors(tmp_path):
    root = tmp_path / 'MSMT17_V2'
    shutil.copytree(V2, root)
    (root / 'list_val.txt').unlink()
    with pytest.raises(FileNotFoundError, match='list_val.txt'):
        MSMT17(str(root), layout='lists')
    (root / 'list_query.txt').write_text('0000/a.jpg\n')
    with pytest.raises(ValueError, match='list_query.txt:1'):
        MSMT17(str(root), split='query')
    (root / 'list_query.txt').write_text('0000/bad-name.jpg 0\n')
    with pytest.raises(ValueError, match='bad-name.jpg'):
        MSMT17(str(root), split='query')
    with pytest.raises(ValueError, match='layout'):
        MSMT17(str(root), layout='V3')
