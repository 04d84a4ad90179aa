# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Pseudo-labelling sharded over the ranks of a process group (issue 26).

One-process pipeline (:class:`JaccardDistance` + :class:`DBSCANClusterer`)::

    kNN of all N rows -> V (k-reciprocal encoding) -> V^ (query expansion)
    -> d_J pairs -> DBSCAN

Sharded pipeline, rank ``r`` of ``W`` owning the rows ``[s_r, e_r)``
(:func:`knn_shard_bounds`: ``s_r ≈ r N / W``, cut at a multiple of faiss's
query block when faiss takes its BLAS path):

1. **Ring kNN** (:func:`ring_knn`): the feature blocks travel round the ring
   ``r -> r + 1`` (``W - 1`` send/recv steps, the next block received while
   the current one is searched); rank ``r`` keeps the running top-k of its
   query rows against every block. Memory per rank ``O(N D / W + N k / W)``:
   its own block, one block in flight, its top-k.
2. **All-gather of the kNN lists**: ``index`` (N, k) int32 and ``sqdist``
   (N, k) float32 on every rank, ``O(N k)``.
3. **Jaccard rows of the block**: the k-reciprocal sets, their expansion,
   the softmax encoding ``V`` and (after an all-gather of ``V``, ``O(N |E|)``)
   the query expansion ``V^`` of the block's rows; ``V^`` is all-gathered
   and every rank computes ``d_J(i, j)`` for its rows ``i`` and all ``j >= i``
   (the upper triangle). The ``x_i . x_j`` of the encoding that the kNN lists
   do not hold are computed during a second ring pass of the feature blocks.
4. The upper-triangle pairs are gathered on rank 0 in rank order, which is
   exactly the row-major order of the one-process computation; rank 0 builds
   the symmetric matrix, runs the clusterer and broadcasts the labels.

**Identical labels.** Every value is computed with the same arithmetic, in
the same order, as in :class:`JaccardDistance` (same float32/float64 steps,
the same summation order of every ``m_ij = sum_k min(V^_ik, V^_jk)``: over
``k`` ascending, in float64), so the distance matrix on rank 0 is
bit-identical to the one-process one and so are the DBSCAN labels. The kNN
distances are those of ``faiss.knn`` (the function behind the one-process
``IndexFlatL2`` search) applied per pair of blocks, forced onto the path
(per-pair or BLAS) that the one-process search takes. The BLAS path's float32
values depend on the shape of each product and on OpenBLAS's thread count:
the blocks are cut at multiples of faiss's query block (so every product has
its one-process shape) and ``knn_threads`` sets the threads; with the same
thread count as the one-process run the kNN is bit-identical (checked by the
2- and 4-process tests and the benchmark's ``--compare-single``). Ties are
ordered by ascending index like faiss's heaps. With CUDA features (NCCL) the torch backend is used and the values may
differ from a one-process GPU run in the last bit (cuBLAS picks kernels by
shape), so there only ARI ~ 1 is promised.

Without the ``(N, D)`` bank (:mod:`.blocks`): the ``PseudoLabelHook``
moves each rank's extracted rows to the rank whose block holds them
(:func:`redistribute_rows`) and, for a model that reads only cluster means,
builds the result from the blocks (:func:`sharded_cluster_means`), so a
rank holds ``O(N D / W + N k)`` throughout.

Hand-written here because no library has it: the ring kNN (faiss and torch
only search one address space) and the row-block form of the k-reciprocal
Jaccard (the official code and :class:`JaccardDistance` work on all rows).
"""
import time
from typing import Callable, Dict, Optional

import numpy as np
import torch

from ..jaccard import JaccardDistance
from .blocks import redistribute_rows, sharded_cluster_means
from .comm import (_all_gather_rows, _broadcast_labels, _gather_1d_to_root,
                   _world, ring_pass, shard_bounds)
from .jaccard_rows import jaccard_upper_rows, sharded_jaccard_upper
from .ring_knn import knn_shard_bounds, ring_knn

__all__ = [
    'shard_bounds', 'knn_shard_bounds', 'ring_knn', 'ring_pass',
    'sharded_jaccard_upper', 'sharded_pseudo_labels', 'jaccard_upper_rows',
    'redistribute_rows', 'sharded_cluster_means'
]


def sharded_pseudo_labels(block: torch.Tensor,
                          n: int,
                          jaccard: JaccardDistance,
                          clusterer: Callable,
                          group=None,
                          timing: Optional[Dict[str, float]] = None,
                          return_dist: bool = False,
                          knn_threads: Optional[int] = None):
    """Labels of all N images, computed by the ranks of ``group`` together.

    Every rank passes its own rows ``block`` = ``features[s_r:e_r]`` with
    ``(s_r, e_r) = knn_shard_bounds(n, D, W)[r]``; every rank gets the same labels,
    identical to ``clusterer(dist=jaccard(features))`` in one process (see
    the module docstring).

    Args:
        block (Tensor): This rank's L2-normalised features.
        n (int): Total images N.
        jaccard (JaccardDistance): The distance (its parameters).
        clusterer (Callable): Called on rank 0 as ``clusterer(dist)`` with
            the symmetric CSR distance, returning the labels (e.g.
            ``lambda d: DBSCANClusterer(eps=0.6)(dist=d)``).
        group: Process group (default: the world).
        timing (dict, optional): Filled with ``knn_s``, ``gather_knn_s``,
            ``encode_s``, ``expand_s``, ``jaccard_rows_s``,
            ``gather_pairs_s``, ``cluster_s`` (rank 0; 0 elsewhere).
        return_dist (bool): Also return the symmetric distance (rank 0;
            None elsewhere).
        knn_threads (int, optional): faiss threads of the kNN; the same
            number as the one-process run gives identical kNN values (see
            :func:`ring_knn`).

    Returns:
        np.ndarray | tuple: int64 labels ``(N,)`` (and the distance).
    """
    timing = {} if timing is None else timing
    rank, world = _world(group)
    bounds = knn_shard_bounds(n, block.shape[1], world)
    s, e = bounds[rank]
    if block.shape[0] != e - s:
        raise ValueError(f'rank {rank} holds {block.shape[0]} rows, expected '
                         f'{e - s} (rows {s}:{e} of N={n}, W={world}); pass '
                         'features[s:e] with knn_shard_bounds(N, D, W).')
    k = min(jaccard.k1, n)
    t = time.perf_counter()
    sq_b, idx_b = ring_knn(block.detach().float(), k, bounds, group,
                           knn_threads)
    timing['knn_s'] = time.perf_counter() - t
    t = time.perf_counter()
    sizes = [b - a for a, b in bounds]
    index = _all_gather_rows(idx_b.to(torch.int32), sizes, group).long()
    sqdist = _all_gather_rows(sq_b, sizes, group)
    timing['gather_knn_s'] = time.perf_counter() - t
    rows, cols, vals = sharded_jaccard_upper(block, sqdist, index, jaccard,
                                             bounds, group, timing)
    del sqdist, index
    t = time.perf_counter()
    rows = _gather_1d_to_root(rows, group)
    cols = _gather_1d_to_root(cols, group)
    vals = _gather_1d_to_root(vals, group)
    timing['gather_pairs_s'] = time.perf_counter() - t
    t = time.perf_counter()
    labels, mat = None, None
    if rank == 0:
        mat = JaccardDistance._symmetric_csr(rows, cols, vals, n)
        del rows, cols, vals
        labels = np.asarray(clusterer(mat), dtype=np.int64)
    labels = _broadcast_labels(labels, n, group)
    timing['cluster_s'] = time.perf_counter() - t
    return (labels, mat) if return_dist else labels
