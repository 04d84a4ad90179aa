# Copyright (c) mmreid_usl contributors. All rights reserved.
"""PseudoIdentitySampler(labels_from='gt'): P x K blocks of true ids."""
from unittest import mock

import numpy as np
import pytest

from mmreid_usl.datasets.samplers import PseudoIdentitySampler

MODULE = 'mmreid_usl.datasets.samplers.pseudo_identity_sampler'


class IdDataset:
    """30 samples of 6 ids (5 images each), 2 cameras."""

    def __init__(self):
        self.pids = np.arange(30) // 5

    def __len__(self):
        return 30

    def get_pids(self):
        return self.pids.copy()

    def get_camids(self):
        return np.arange(30) % 2


def make(rank=0, world_size=1, **kwargs):
    with mock.patch(
            f'{MODULE}.get_dist_info', return_value=(rank, world_size)):
        return PseudoIdentitySampler(
            IdDataset(), seed=0, labels_from='gt', **kwargs)


@pytest.mark.parametrize('camera_mode', ['ignore', 'prefer_other'])
def test_blocks_of_true_ids_without_set_labels(camera_mode):
    sampler = make(num_instances=4, samples_per_epoch=24,
                   camera_mode=camera_mode)
    assert sampler.num_clusters == 6
    indices = list(sampler)
    assert len(indices) == 24
    pids = IdDataset().pids
    for block in np.asarray(indices).reshape(-1, 4):
        assert len(set(pids[block])) == 1


def test_ranks_get_disjoint_identity_blocks():
    r0 = list(make(rank=0, world_size=2, num_instances=4,
                   samples_per_epoch=12))
    r1 = list(make(rank=1, world_size=2, num_instances=4,
                   samples_per_epoch=12))
    pids = IdDataset().pids
    first0 = {int(pids[b[0]]) for b in np.asarray(r0).reshape(-1, 4)}
    first1 = {int(pids[b[0]]) for b in np.asarray(r1).reshape(-1, 4)}
    assert len(first0) == len(first1) == 3 and first0.isdisjoint(first1)


def test_errors():
    with pytest.raises(ValueError, match='labels_from'):
        PseudoIdentitySampler(IdDataset(), labels_from='true')

    class NoIds:

        def __len__(self):
            return 4

    with pytest.raises(TypeError, match='get_pids'):
        PseudoIdentitySampler(
            NoIds(), camera_mode='ignore', labels_from='gt')
    # the default still needs the hook
    sampler = PseudoIdentitySampler(IdDataset(), seed=0)
    with pytest.raises(RuntimeError, match='set_labels'):
        iter(sampler)
