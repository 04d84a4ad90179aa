# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Random streams that depend only on (seed, epoch): exact resume."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.utils.data import DataLoader

from mmreid_usl.registry import HOOKS


def _states(*entropy: int) -> np.ndarray:
    """Four 32-bit words from a numpy ``SeedSequence`` of ``entropy``."""
    return np.random.SeedSequence([int(e) for e in entropy]).generate_state(
        4, dtype=np.uint32)


def seed_global_rngs(*entropy: int) -> None:
    """Seed Python's ``random``, numpy's and torch's global generators.

    Each generator gets its own word of ``SeedSequence(entropy)``; torch's
    seed is 64 bits (``torch.manual_seed`` also seeds CUDA).
    """
    words = _states(*entropy)
    random.seed(int(words[0]))
    np.random.seed(int(words[1]))
    torch.manual_seed((int(words[2]) << 32) | int(words[3]))


class EpochWorkerSeeder:
    """``worker_init_fn`` seeding a worker from (seed, epoch, rank, id).

    MMEngine's default ``worker_init_fn`` seeds worker ``i`` with
    ``seed + num_workers * rank + i`` whatever the epoch: without persistent
    workers every epoch replays the same augmentation draws, and with
    persistent workers the draws of epoch ``N`` depend on all earlier epochs
    (a resumed run cannot reproduce them). Here the epoch is part of the
    seed, set by :class:`RandomStateHook` before the epoch's workers start.

    Args:
        seed (int): The run's seed.
        rank (int): Process rank.
        epoch (int): The epoch whose workers are started. Defaults to 0.
    """

    def __init__(self, seed: int, rank: int, epoch: int = 0) -> None:
        self.seed = seed
        self.rank = rank
        self.epoch = epoch

    def __call__(self, worker_id: int) -> None:
        # the trailing 1 keeps worker streams apart from the main process's
        seed_global_rngs(self.seed, self.epoch, self.rank, worker_id, 1)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Derive every random stream of a training epoch from (seed, epoch).

    A run resumed from ``epoch_N.pth`` must draw exactly the random numbers
    the uninterrupted run drew in epoch ``N + 1`` and later. Before each
    training epoch, and before any other hook of that epoch (priority
    ``VERY_HIGH``, so also before re-clustering), this hook

    1. seeds the main process's Python, numpy and torch generators from
       ``(seed, epoch)`` — this covers model-side randomness (e.g. the
       ShuffleBN permutation), augmentations when ``num_workers=0``, and the
       base seed the ``DataLoader`` draws for its workers;
    2. gives the training dataloader an :class:`EpochWorkerSeeder`, so
       worker ``i`` of epoch ``N`` is seeded from ``(seed, N, rank, i)``;
    3. restarts persistent training workers at each epoch (their generators
       would otherwise carry the state of earlier epochs, which a resumed run
       cannot know); this costs one worker start-up per epoch.

    The sampler already draws from ``(seed, epoch)``
    (``PseudoIdentitySampler``, ``DefaultSampler``), and the model,
    memories, pseudo-labels, optimizer and scheduler are in the checkpoint.
    Hence a resume at an epoch boundary is bit-exact (same machine and
    thread count; on GPU, only with deterministic kernels). Requires a fixed
    ``randomness.seed`` in the config.

    Args:
        restart_persistent_workers (bool): Restart persistent training
            workers every epoch (needed for exactness). Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, restart_persistent_workers: bool = True) -> None:
        self.restart_persistent_workers = restart_persistent_workers
        self._logged = False

    def before_train_epoch(self, runner) -> None:
        """Reseed everything for ``runner.epoch``."""
        seed, epoch = int(runner.seed), int(runner.epoch)
        seed_global_rngs(seed, epoch)
        loader = runner.train_dataloader
        restarted = self._reseed_workers(loader, seed, epoch)
        if not self._logged:
            self._logged = True
            extra = (' Persistent training workers are restarted every '
                     'epoch.' if restarted is not None else '')
            print_log(
                f'RandomStateHook: random streams of epoch N derive from '
                f'(seed={seed}, N); a resume at an epoch boundary is exact.'
                + extra,
                logger='current')

    def _reseed_workers(self, loader, seed: int,
                        epoch: int) -> Optional[bool]:
        """Install the per-epoch seeder; returns whether workers restart."""
        if not isinstance(loader, DataLoader) or loader.num_workers == 0:
            return None
        seeder = loader.worker_init_fn
        if not isinstance(seeder, EpochWorkerSeeder):
            seeder = EpochWorkerSeeder(seed, get_rank())
            loader.worker_init_fn = seeder
        seeder.seed, seeder.epoch = seed, epoch
        if not (loader.persistent_workers
                and self.restart_persistent_workers):
            return None
        # Hand-written: torch has no public way to restart the workers of a
        # persistent DataLoader. Dropping its iterator shuts them down; the
        # next ``iter(loader)`` starts fresh ones with the new seeds.
        iterator = getattr(loader, '_iterator', None)
        if iterator is not None:
            iterator._shutdown_workers()
            loader._iterator = None
        return True
