# Copyright (c) mmreid_usl contributors. All rights reserved.
from collections import Counter
from unittest import mock

import numpy as np
import pytest
import torch

from mmreid_usl.datasets.samplers import PseudoIdentitySampler
from mmreid_usl.registry import DATA_SAMPLERS

MODULE = 'mmreid_usl.datasets.samplers.pseudo_identity_sampler'


class FakeDataset:
    """60 samples; cluster c = i // 6 spread over cameras i % 3."""

    def __init__(self, n=60, num_cams=3):
        self.camids = np.arange(n) % num_cams

    def __len__(self):
        return len(self.camids)

    def get_camids(self):
        return self.camids.copy()


def make(dataset=None, rank=0, world_size=1, **kwargs):
    kwargs.setdefault('seed', 0)
    with mock.patch(
            f'{MODULE}.get_dist_info', return_value=(rank, world_size)):
        return PseudoIdentitySampler(dataset or FakeDataset(), **kwargs)


def blocks(indices, k):
    return [indices[i:i + k] for i in range(0, len(indices), k)]


LABELS = np.arange(60) // 6
LABELS[::7] = -1  # some outliers


@pytest.mark.parametrize('mode', ['prefer_other', 'more_camera', 'ignore'])
def test_k_per_identity_no_outliers(mode):
    sampler = make(camera_mode=mode, samples_per_epoch=40)
    sampler.set_labels(LABELS)
    idx = list(sampler)
    assert len(idx) == len(sampler) == 40
    assert all(LABELS[i] >= 0 for i in idx)
    for block in blocks(idx, 4):
        assert len({LABELS[i] for i in block}) == 1


def test_registry_default_length_and_epochs():
    sampler = DATA_SAMPLERS.build(
        dict(type='PseudoIdentitySampler', num_instances=4, seed=1),
        default_args=dict(dataset=FakeDataset()))
    assert len(sampler) == 60  # len(dataset), a multiple of K
    sampler.set_labels(torch.as_tensor(LABELS))
    first = list(sampler)
    assert first == list(sampler)  # same epoch -> same order
    sampler.set_epoch(1)
    assert list(sampler) != first and len(list(sampler)) == 60


def test_ranks_share_global_list():
    world = 3
    samplers = [
        make(rank=r, world_size=world, samples_per_epoch=24)
        for r in range(world)
    ]
    for s in samplers:
        s.set_labels(LABELS.tolist())
        s.set_epoch(5)
    per_rank = [list(s) for s in samplers]
    assert all(len(x) == 24 for x in per_rank)
    # the union interleaves whole blocks round-robin from one global list
    again = [list(s) for s in samplers]
    assert per_rank == again
    for indices in per_rank:
        for block in blocks(indices, 4):
            assert len({LABELS[i] for i in block}) == 1
    # rank r's j-th block is global block j * world + r
    single = make(world_size=1, samples_per_epoch=72)
    single.set_labels(LABELS)
    single.set_epoch(5)
    glob = blocks(list(single), 4)
    for r in range(world):
        assert blocks(per_rank[r], 4) == glob[r::world][:6]


def test_prefer_other_camera():
    sampler = make(camera_mode='prefer_other', samples_per_epoch=400)
    sampler.set_labels(LABELS)
    cams = FakeDataset().camids
    for block in blocks(list(sampler), 4):
        anchor_cam = cams[block[0]]
        # every cluster spans 3 cameras: positives never share the anchor's
        assert all(cams[i] != anchor_cam for i in block[1:])


def test_prefer_other_replacement_rules():
    # cluster 0: cams [0, 1, 1, 1, 1] -> anchor cam 1 leaves |S| = 1 < K
    # cluster 1: one camera, 2 images -> S' = 1 image, with replacement
    # cluster 2: singleton -> block of 1
    ds = FakeDataset(8)
    ds.camids = np.array([0, 1, 1, 1, 1, 2, 2, 0])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    sampler = make(ds, camera_mode='prefer_other', samples_per_epoch=36)
    sampler.set_labels(labels)
    idx = list(sampler)
    assert len(idx) == 36
    i = 0
    sizes = Counter()
    while i < len(idx):
        c = labels[idx[i]]
        size = 1 if c == 2 else 4
        block = idx[i:i + size]
        sizes[c] += 1
        assert all(labels[j] == c for j in block)
        if c == 0 and ds.camids[block[0]] == 1:
            assert block[1:] == [0, 0, 0]
        if c == 1:
            assert block[0] not in block[1:] or len(set(block)) == 1
            assert set(block[1:]) == {5, 6} - {block[0]}
        i += size
    assert sizes[2] > 0


def test_more_camera_exact_k():
    ds = FakeDataset(10)
    ds.camids = np.array([0, 0, 0, 1, 2, 3, 4, 5, 5, 5])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2])
    sampler = make(ds, camera_mode='more_camera', samples_per_epoch=120)
    sampler.set_labels(labels)
    for block in blocks(list(sampler), 4):
        c = labels[block[0]]
        assert len(block) == 4 and all(labels[j] == c for j in block)
        cams = set(ds.camids[block].tolist())
        if c == 0:  # 2 cameras, 4 images: both cameras, no repeat
            assert cams == {0, 1} and len(set(block)) == 4
        if c == 1:  # 4 cameras -> 4 distinct cameras
            assert len(cams) == 4
        if c == 2:  # singleton -> repeated
            assert block == [9] * 4


def test_errors():
    sampler = make()
    with pytest.raises(RuntimeError, match='set_labels'):
        list(sampler)
    assert len(sampler) == 60  # known before any label
    with pytest.raises(ValueError, match='59 labels.*60'):
        sampler.set_labels(np.zeros(59, int))
    with pytest.warns(UserWarning, match='zero clusters'):
        sampler.set_labels(-np.ones(60, int))
    assert list(sampler) == [] and len(sampler) == 60
    with pytest.raises(ValueError, match='>= -1'):
        sampler.set_labels(np.full(60, -2))
    with pytest.raises(ValueError, match='integers'):
        sampler.set_labels(np.zeros(60, float))
    with pytest.raises(ValueError, match='multiple of num_instances'):
        make(samples_per_epoch=10)
    with pytest.raises(ValueError, match='camera_mode'):
        make(camera_mode='cams')
