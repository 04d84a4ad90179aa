# Copyright (c) mmreid_usl contributors. All rights reserved.
"""PseudoIdentitySampler(samples_per_epoch='clusters'): Theory's epoch,
every cluster once with K images, outliers excluded, counted by hand."""
from collections import Counter
from unittest import mock

import numpy as np
import pytest
from torch.utils.data import DataLoader

from mmreid_usl.datasets.samplers import PseudoIdentitySampler

MODULE = 'mmreid_usl.datasets.samplers.pseudo_identity_sampler'

# 27 samples: 5 clusters of 5, 3, 4, 2 and 6 images, and 7 outliers (-1).
#   cluster 0: 0 1 2 3 4        cluster 1: 5 6 7
#   cluster 2: 9 10 11 12       cluster 3: 13 14   cluster 4: 16 .. 21
#   outliers: 8, 15, 22, 23, 24, 25, 26
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, -1, 2, 2, 2, 2, 3, 3, -1,
                   4, 4, 4, 4, 4, 4, -1, -1, -1, -1, -1])
N = len(LABELS)
K = 4


class _Data:
    """A map-style dataset of ``n`` indices (the sampler only needs len)."""

    def __init__(self, n=27):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i

    def get_pids(self):
        return LABELS.copy()


def make(rank=0, world_size=1, **kwargs):
    kwargs.setdefault('seed', 0)
    kwargs.setdefault('camera_mode', 'ignore')
    kwargs.setdefault('num_instances', K)
    kwargs.setdefault('samples_per_epoch', 'clusters')
    with mock.patch(
            f'{MODULE}.get_dist_info', return_value=(rank, world_size)):
        return PseudoIdentitySampler(_Data(), **kwargs)


def test_hand_count_one_process():
    sampler = make()
    assert len(sampler) == 0  # no clusters before the first labelling
    sampler.set_labels(LABELS)
    # 5 clusters x K=4 = 20 samples: the 7 outliers and the cluster sizes
    # play no part
    assert len(sampler) == 20
    indices = list(sampler)
    assert len(indices) == 20
    counts = Counter(int(LABELS[i]) for i in indices)
    # every cluster exactly once, K images each, no outlier
    assert counts == {0: 4, 1: 4, 2: 4, 3: 4, 4: 4}
    for b in range(5):
        block = indices[b * K:(b + 1) * K]
        assert len({int(LABELS[i]) for i in block}) == 1
    by_cluster = {int(LABELS[indices[b * K]]): indices[b * K:(b + 1) * K]
                  for b in range(5)}
    # K distinct images when the cluster has >= K; with replacement if not
    assert len(set(by_cluster[0])) == 4 and len(set(by_cluster[4])) == 4
    assert set(by_cluster[3]) == {13, 14}  # 2 images drawn 4 times
    # Theory's DataLoader(batch_size=B, drop_last=True): floor(20 / 8) = 2
    loader = DataLoader(_Data(), batch_size=8, sampler=sampler,
                        drop_last=True)
    assert len(loader) == 2 and len(list(loader)) == 2
    # the GDS-wording switch: one pass over all 27 images, outliers
    # included: 27 // 4 * 4 = 24 indices, 3 batches
    onepass = make(samples_per_epoch='dataset')
    onepass.set_labels(LABELS)
    assert len(onepass) == 24 and len(DataLoader(
        _Data(), batch_size=8, sampler=onepass, drop_last=True)) == 3


def test_recomputed_at_every_set_labels():
    sampler = make()
    loader = DataLoader(_Data(), batch_size=8, sampler=sampler,
                        drop_last=True)
    sampler.set_labels(LABELS)
    assert (len(sampler), len(loader)) == (20, 2)
    # 2 clusters of 10 and 15 images, 2 outliers: 2 x 4 = 8 -> 1 batch
    fewer = np.where(np.arange(N) < 11, 0, 1)
    fewer[[5, 17]] = -1
    sampler.set_labels(fewer)
    assert (len(sampler), len(loader)) == (8, 1)
    assert Counter(int(fewer[i]) for i in sampler) == {0: 4, 1: 4}
    # 7 clusters (of 3 images) -> 28 samples -> 3 batches (4 dropped)
    more = np.arange(N) // 3
    more[21:] = -1
    sampler.set_labels(more)
    assert (len(sampler), len(loader)) == (28, 3)
    assert len(list(loader)) == 3
    # the one-pass epoch does not follow the labels
    onepass = make(samples_per_epoch=None)
    onepass.set_labels(more)
    assert len(onepass) == 24
    # zero clusters: an empty epoch
    with pytest.warns(UserWarning, match='zero clusters'):
        sampler.set_labels(-np.ones(N, int))
    assert len(sampler) == 0 and list(sampler) == [] and len(loader) == 0


@pytest.mark.parametrize('world_size,per_rank', [(2, 8), (3, 4), (5, 4),
                                                 (6, 0)])
def test_every_rank_agrees(world_size, per_rank):
    # floor(5 clusters / world_size) * K per rank
    samplers = [make(rank=r, world_size=world_size)
                for r in range(world_size)]
    for s in samplers:
        s.set_labels(LABELS)
        s.set_epoch(3)
    lists = [list(s) for s in samplers]
    assert [len(s) for s in samplers] == [per_rank] * world_size
    assert [len(x) for x in lists] == [per_rank] * world_size
    # same number of iterations on every rank (drop_last, 4 per rank)
    assert len({len(DataLoader(_Data(), batch_size=4, sampler=s,
                               drop_last=True)) for s in samplers}) == 1
    # whole blocks per rank, and no cluster on two ranks in one epoch
    seen = []
    for indices in lists:
        for b in range(0, len(indices), K):
            block = {int(LABELS[i]) for i in indices[b:b + K]}
            assert len(block) == 1 and -1 not in block
            seen += list(block)
    assert len(seen) == len(set(seen)) == (5 // world_size) * world_size


def test_gt_labels_give_ids_times_k():
    # supervised (stage 1): Theory's source epoch, #ids x K
    sampler = make(labels_from='gt')
    assert sampler.num_clusters == 5 and len(sampler) == 20


def test_bad_values():
    with pytest.raises(ValueError, match="'clusters'"):
        make(samples_per_epoch='cluster')
    with pytest.raises(ValueError, match='multiple of num_instances'):
        make(samples_per_epoch=10)
    with pytest.raises(ValueError, match='multiple of num_instances'):
        make(samples_per_epoch=True)
