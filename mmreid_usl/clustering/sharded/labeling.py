# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The :class:`PseudoLabeler`'s sharded path: when a labelling is computed
by the ranks of a process group together, and one rank's part of it.

**Determinism.** The sharded labels equal the one-process labels bit for
bit when faiss runs with the same number of threads on every rank as in the
one-process run (OpenBLAS's float32 products, faiss's exact search above
``N * D >= distance_compute_blas_threshold``, depend on the thread split;
below it the search is per pair and thread-independent). The labeler's
``knn_threads`` fixes that count for both paths; left None, faiss keeps its
current count (``OMP_NUM_THREADS``: ``torch.distributed.run``, hence
``dist_train.sh``, sets 1 per worker unless it is set), so a ``W``-process run
equals a one-process run launched with the same ``OMP_NUM_THREADS``.
"""
import copy
import time
from contextlib import contextmanager
from dataclasses import replace
from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np
import torch.distributed as torch_dist
from mmengine.logging import print_log

from ..base import DistanceMatrix, LabelingContext
from ..jaccard import JaccardDistance
from ..knn import APPROX_BACKENDS
from . import sharded_pseudo_labels
from .comm import _global_rank
from .ring_knn import _faiss, knn_shard_bounds

__all__ = ['SHARDED_MODES', 'ShardedLabelingMixin', 'faiss_threads']

#: Values of ``PseudoLabeler(sharded=...)``.
SHARDED_MODES = ('auto', True, False)


@contextmanager
def faiss_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block with faiss's OpenMP threads set to ``threads``
    (restored after; a no-op for None or without faiss)."""
    faiss = _faiss()
    if threads is None or faiss is None:
        yield
        return
    old = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(old)


class ShardedLabelingMixin:
    """Sharded labelling of a :class:`PseudoLabeler` (its ``sharded`` and
    ``knn_threads`` options; see the labeler's docstring)."""

    sharded: Union[str, bool] = 'auto'
    knn_threads: Optional[int] = None

    def _check_sharded_options(self) -> None:
        """Validate ``sharded`` / ``knn_threads`` at construction."""
        # a bool is not an int here (sharded=1 is refused)
        if not (self.sharded is True or self.sharded is False
                or (isinstance(self.sharded, str) and self.sharded == 'auto')):
            raise ValueError(f'sharded must be one of {SHARDED_MODES}, got '
                             f'{self.sharded!r}')
        if self.knn_threads is not None and (
                not isinstance(self.knn_threads, int) or self.knn_threads < 1):
            raise ValueError('knn_threads must be a positive int or None, '
                             f'got {self.knn_threads!r}')
        reason = self._unshardable()
        if self.sharded is True and reason:
            raise ValueError(f'PseudoLabeler(sharded=True): {reason}.')

    def _unshardable(self) -> Optional[str]:
        """Why this configuration has no sharded path (None: it has)."""
        if type(self.distance) is not JaccardDistance:
            return (f'the distance is {type(self.distance).__name__}, the '
                    'sharded path computes a plain JaccardDistance')
        if self.distance.knn_backend in APPROX_BACKENDS:
            return (f'the kNN is approximate ({self.distance.knn_backend}), '
                    'the sharded kNN exact')
        if self.fraction < 1.0:
            return f'a data fraction ({self.fraction}) is labelled'
        if self.needs_true_ids:
            return 'the clusterer labels from the true ids (oracle)'
        return None

    def sharded_fallback(self,
                         context: LabelingContext,
                         labels_from: str = 'pseudo') -> Optional[str]:
        """Why the labelling of ``context`` is computed by one process
        (None: the ranks of ``context.process_group`` compute it together).

        ``'auto'`` shards only where the labels are bit-identical to one
        process's: more than one rank, a clustering (not ``'gt'``) of a
        plain :class:`JaccardDistance` of all images, fp32 kNN with the
        ``'auto'`` or ``'faiss'`` backend, CPU features and faiss
        importable. ``True`` also shards CUDA features or another exact
        backend (labels then equal up to the kNN's last bits).
        """
        if self.sharded is False:
            return 'sharded=False'
        if context.world_size <= 1:
            return 'one process'
        if labels_from == 'gt':
            return "labels_from='gt' (no clustering)"
        reason = self._unshardable()
        if reason or self.sharded is True:
            return reason
        jac = self.distance
        if jac.knn_precision != 'fp32' or jac.knn_backend == 'torch':
            return (f'the kNN is {jac.knn_backend}/{jac.knn_precision}, the '
                    'sharded one is faiss fp32')
        if context.features is not None and context.features.is_cuda:
            return ('the features are on CUDA, where the sharded kNN may '
                    'differ in the last bit (set sharded=True to use it)')
        if _faiss() is None:
            return 'faiss is not installed'
        return None

    def uses_sharded(self,
                     context: LabelingContext,
                     labels_from: str = 'pseudo') -> bool:
        """Whether :meth:`label` shards ``context`` (the same answer on
        every rank); logs once why not, when ``sharded`` allowed it."""
        reason = self.sharded_fallback(context, labels_from)
        if reason and self.sharded is not False \
                and context.world_size > 1 \
                and reason not in getattr(self, '_fallbacks_logged', ()):
            self._fallbacks_logged = getattr(self, '_fallbacks_logged',
                                             set()) | {reason}
            print_log(f'PseudoLabeler: labelling on rank 0 alone ({reason}).',
                      logger='current')
        return reason is None

    def _label_sharded(
            self, context: LabelingContext, start: float
    ) -> Tuple[np.ndarray, Dict[str, float], Dict[str, float]]:
        """This rank's part of the sharded labelling (every rank calls it).

        ``context.features`` holds either all N rows on every rank (the
        hook's all-gather), of which the rank keeps its block
        ``knn_shard_bounds``, or only that block (``context.row_block``,
        ``context.num_samples``: the hook moved the rows there without
        gathering the bank). The ranks compute the ring kNN and the Jaccard
        rows of their blocks, rank 0 clusters the gathered distance with
        the clusterer (its context without the features when they are a
        block), and the labels reach every rank.

        Returns:
            tuple: Labels ``(N,)`` (raw clusterer labels, every rank),
            timing (``distance_time`` on rank 0 and the stages of
            :func:`sharded_pseudo_labels`) and the distance's stats (rank 0).

        Raises:
            ValueError: If ``context.row_block`` is not this rank's
                :func:`knn_shard_bounds` block.
        """
        group = context.process_group
        rank, world = context.rank, context.world_size
        feats = context.features.detach().float()
        alone = replace(context, process_group=None)
        if context.row_block is None:
            n, dim = feats.shape
            s, e = knn_shard_bounds(n, dim, world)[rank]
            block = feats[s:e]
        else:
            n, dim = context.num_samples, feats.shape[1]
            s, e = knn_shard_bounds(n, dim, world)[rank]
            if tuple(context.row_block) != (s, e) or len(feats) != e - s:
                raise ValueError(
                    f'rank {rank}: the context holds rows '
                    f'{context.row_block} ({len(feats)} rows) of N={n}, '
                    f'the sharded labelling needs rows {s}:{e} '
                    '(knn_shard_bounds(N, D, W)).')
            block = feats
            # a clusterer never sees a partial bank as the features
            alone = replace(alone, features=None, row_block=None)
        # rank 0's radius (a clusterer's state, e.g. an eps computed from
        # the data, lives on rank 0 alone)
        radius = [self.pruning_radius() if rank == 0 else None]
        torch_dist.broadcast_object_list(radius,
                                         src=_global_rank(group, 0),
                                         group=group)
        jaccard = copy.copy(self.distance)
        jaccard.max_distance = self.distance.resolve_radius(radius[0])
        timing: Dict[str, float] = {}
        stats: Dict[str, float] = {}

        def cluster(mat) -> np.ndarray:
            dist = DistanceMatrix(mat, max_distance=jaccard.max_distance)
            stats.update(dist.stats)
            timing['distance_time'] = time.perf_counter() - start
            return self.clusterer(dist, alone)

        labels = sharded_pseudo_labels(block,
                                       n,
                                       jaccard,
                                       cluster,
                                       group=group,
                                       timing=timing,
                                       knn_threads=self.knn_threads)
        return labels, timing, stats

    def _distance(self, sub: LabelingContext) -> DistanceMatrix:
        """The one-process distance of ``sub`` (faiss on ``knn_threads``)."""
        with faiss_threads(self.knn_threads):
            return self.distance(sub.features, sub, self.pruning_radius())
