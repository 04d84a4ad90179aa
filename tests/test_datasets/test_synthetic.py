# Copyright (c) mmreid_usl contributors. All rights reserved.
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from mmreid_usl.datasets import SyntheticPedestrians
from mmreid_usl.datasets.synthetic import (ensure_synthetic_pedestrians,
                                           generate_synthetic_pedestrians)
from mmreid_usl.registry import DATASETS

SMALL = dict(
    num_train_ids=6,
    num_test_ids=4,
    num_cams=3,
    cams_per_id=(2, 3),
    images_per_cam=(1, 2))


def _files(root):
    out = {}
    for d in ('bounding_box_train', 'query', 'bounding_box_test'):
        for name in sorted(os.listdir(osp.join(root, d))):
            with open(osp.join(root, d, name), 'rb') as f:
                out[f'{d}/{name}'] = f.read()
    return out


def test_deterministic_and_layout(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    counts = generate_synthetic_pedestrians(a, **SMALL)
    generate_synthetic_pedestrians(b, **SMALL)
    files_a = _files(a)
    assert files_a == _files(b)  # same names, same bytes
    c = str(tmp_path / 'c')
    generate_synthetic_pedestrians(c, **dict(SMALL, seed=1))
    assert _files(c) != files_a
    n = {
        d: len(os.listdir(osp.join(a, d)))
        for d in ('bounding_box_train', 'query', 'bounding_box_test')
    }
    assert n == dict(
        bounding_box_train=counts['train'],
        query=counts['query'],
        bounding_box_test=counts['gallery'])
    name = sorted(os.listdir(osp.join(a, 'query')))[0]
    img = np.asarray(Image.open(osp.join(a, 'query', name)))
    assert img.shape == (128, 64, 3) and img.dtype == np.uint8


def test_splits_and_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREID_USL_CACHE', str(tmp_path))
    train = DATASETS.build(
        dict(type='SyntheticPedestrians', generator_cfg=SMALL))
    assert train.data_root.startswith(str(tmp_path))
    assert 'synthetic_pedestrians_v1_' in train.data_root  # hashed config
    assert train.num_pids == 6 and train.num_cams == 3
    assert osp.isfile(osp.join(train.data_root, 'generator.json'))
    query = SyntheticPedestrians(split='query', generator_cfg=SMALL)
    gallery = SyntheticPedestrians(split='gallery', generator_cfg=SMALL)
    assert query.data_root == train.data_root
    # test ids are disjoint from train ids (raw ids 7..10)
    assert set(query.get_pids()) == set(range(7, 11))
    # one query per (id, camera), each id seen by >= 2 cameras
    q = list(zip(query.get_pids(), query.get_camids()))
    assert len(q) == len(set(q))
    for pid in set(query.get_pids()):
        assert (query.get_pids() == pid).sum() >= 2
    assert set(gallery.get_pids()) <= set(query.get_pids())
    test = SyntheticPedestrians(split='test', generator_cfg=SMALL)
    assert len(test) == len(query) + len(gallery)


def test_default_root_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv('MMREID_USL_CACHE', str(tmp_path))
    ds = SyntheticPedestrians(lazy_init=True)
    assert ds.data_root == osp.join(str(tmp_path), 'synthetic_pedestrians_v1')
    assert not osp.exists(ds.data_root)  # lazy: nothing generated yet
    with pytest.raises(ValueError, match='unknown generator_cfg'):
        SyntheticPedestrians(generator_cfg=dict(num_ids=3))
    broken = tmp_path / 'broken'
    broken.mkdir()
    with pytest.raises(FileExistsError, match='broken'):
        SyntheticPedestrians(data_root=str(broken), generator_cfg=SMALL)
    with pytest.raises(ValueError, match='cams_per_id'):
        generate_synthetic_pedestrians(
            str(tmp_path / 'x'), num_cams=2, cams_per_id=(2, 3))


def test_concurrent_generation_is_atomic(tmp_path):
    root = str(tmp_path / 'shared')
    with ThreadPoolExecutor(2) as pool:
        roots = list(
            pool.map(lambda _: ensure_synthetic_pedestrians(root, **SMALL),
                     range(2)))
    assert roots == [root, root]
    assert sorted(os.listdir(tmp_path)) == ['shared']  # no temp dir left
    ref = str(tmp_path / 'ref')
    generate_synthetic_pedestrians(ref, **SMALL)
    assert _files(root) == _files(ref)
    mtime = os.path.getmtime(osp.join(root, 'generator.json'))
    ensure_synthetic_pedestrians(root, **SMALL)  # reused, not regenerated
    assert os.path.getmtime(osp.join(root, 'generator.json')) == mtime
