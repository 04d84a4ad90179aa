# Copyright (c) mmreid_usl contributors. All rights reserved.
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from mmreid_usl.engine.hooks import RandomStateHook
from mmreid_usl.engine.hooks.random_state_hook import EpochWorkerSeeder


class _RandomDataset(Dataset):
    """Every item draws from the three global generators (like transforms)."""

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return torch.tensor(
            [idx, torch.rand(1).item(),
             np.random.rand(),
             random.random()])


def _loader(persistent: bool) -> DataLoader:
    return DataLoader(
        _RandomDataset(),
        batch_size=2,
        num_workers=2,
        persistent_workers=persistent,
        worker_init_fn=lambda i: None)  # what MMEngine's would be replaced by


def _epoch(hook, loader, epoch, seed=7):
    runner = SimpleNamespace(seed=seed, epoch=epoch, train_dataloader=loader)
    hook.before_train_epoch(runner)
    main = torch.rand(1)  # model-side randomness in the main process
    return torch.cat(list(loader)), main


@pytest.mark.slow  # DataLoader worker processes
@pytest.mark.parametrize('persistent', [True, False])
def test_epoch_streams_depend_only_on_seed_and_epoch(persistent):
    straight = _loader(persistent)
    hook = RandomStateHook()
    e0, m0 = _epoch(hook, straight, 0)
    e1, m1 = _epoch(hook, straight, 1)
    assert isinstance(straight.worker_init_fn, EpochWorkerSeeder)
    # a resumed run starts a new loader (new workers) at epoch 1
    resumed = _loader(persistent)
    r1, rm1 = _epoch(RandomStateHook(), resumed, 1)
    assert torch.equal(e1, r1) and torch.equal(m1, rm1)
    # epochs differ from each other, and from another seed
    assert not torch.equal(e0[:, 1:], e1[:, 1:]) and not torch.equal(m0, m1)
    other, _ = _epoch(RandomStateHook(), _loader(persistent), 1, seed=8)
    assert not torch.equal(other[:, 1:], e1[:, 1:])


def test_worker_seeds_differ_by_worker_and_rank():
    draws = []
    for rank, worker in [(0, 0), (0, 1), (1, 0)]:
        EpochWorkerSeeder(seed=3, rank=rank, epoch=2)(worker)
        draws.append((torch.rand(1).item(), np.random.rand(),
                      random.random()))
    assert len(set(draws)) == 3
    EpochWorkerSeeder(seed=3, rank=0, epoch=2)(0)
    assert (torch.rand(1).item(), np.random.rand(),
            random.random()) == draws[0]
