# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest

from mmreid_usl.datasets import ReIDFolderDataset

DATA = osp.join(osp.dirname(__file__), '..', 'data')


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b'')


def test_generic_layout_and_two_digit_cameras():
    ds = ReIDFolderDataset(osp.join(DATA, 'MSMT17_V1'), split='train')
    # sorted by path: 0000_c14_0001, 0000_c1_0000, 0001_c15_0002, ...
    assert ds.get_camids().tolist() == [13, 0, 14, 2, 2]
    assert ds.get_pids().tolist() == [0, 0, 1, 1, 1]


def test_custom_split_dirs_and_pattern(tmp_path):
    _touch(tmp_path / 'tr', 'p12-cam3.png', 'p5-cam1.png', 'notes.txt')
    ds = ReIDFolderDataset(
        str(tmp_path),
        split_dirs=dict(train='tr'),
        name_pattern=r'p(\d+)-cam(\d+)')
    # p12 comes first by path; raw ids 5 < 12 relabel to 0, 1
    assert ds.get_pids().tolist() == [1, 0]
    assert ds.get_camids().tolist() == [2, 0]


def test_empty_and_unparsable(tmp_path):
    _touch(tmp_path / 'bounding_box_train', 'Thumbs.db')
    with pytest.raises(ValueError, match='bounding_box_train.*no image'):
        ReIDFolderDataset(str(tmp_path))
    _touch(tmp_path / 'bounding_box_train', 'person_a.jpg')
    with pytest.raises(ValueError) as err:
        ReIDFolderDataset(str(tmp_path))
    assert 'person_a.jpg' in str(err.value)
    assert r'^(-1|\d+)_c(\d+)' in str(err.value)


@pytest.mark.parametrize(
    'name,problem',
    [
        ('0000-1_c01s1_000001_00.jpg', 'does not match'),  # bad pid
        ('photo_2023_c3.jpg', 'does not match'),  # pid not at the start
        ('0001_c00s1_000001_00.jpg', 'camera 0 is below 1'),  # 1-based
        ('-2_c1s1_000001_00.jpg', 'does not match'),
    ])
def test_bad_names_name_the_file_and_pattern(tmp_path, name, problem):
    _touch(tmp_path / 'bounding_box_train', '0002_c1s1_000451_03.jpg', name)
    with pytest.raises(ValueError) as err:
        ReIDFolderDataset(str(tmp_path))
    msg = str(err.value)
    assert name in msg and problem in msg
    assert r'^(-1|\d+)_c(\d+)' in msg


def test_non_integer_groups_name_the_file(tmp_path):
    _touch(tmp_path / 'bounding_box_train', 'pX-cam3.png')
    with pytest.raises(ValueError) as err:
        ReIDFolderDataset(
            str(tmp_path), name_pattern=r'p(\w+)-cam(\d+)')
    assert 'pX-cam3.png' in str(err.value)
    assert 'must be integers' in str(err.value)


def test_zero_based_cameras_need_cam_start(tmp_path):
    _touch(tmp_path / 'bounding_box_train', '0001_c0_a.jpg', '0001_c1_b.jpg')
    with pytest.raises(ValueError, match='0001_c0_a.jpg'):
        ReIDFolderDataset(str(tmp_path))
    ds = ReIDFolderDataset(str(tmp_path), cam_start=0)
    assert ds.get_camids().tolist() == [0, 1]


def test_only_junk_is_empty(tmp_path):
    _touch(tmp_path / 'query', '-1_c1s1_000401_03.jpg')
    with pytest.raises(ValueError, match="'query'.*no image"):
        ReIDFolderDataset(str(tmp_path), split='query')


def test_bad_pattern():
    with pytest.raises(ValueError, match='two groups'):
        ReIDFolderDataset(DATA, name_pattern=r'(\d+)')
