# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Step 1 of the sharded pseudo-labelling: the ring kNN (faiss-identical
values, the one-process search path forced)."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..knn import _put_self_first
from .comm import _world, ring_pass, shard_bounds


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return faiss


def _faiss_uses_blas(n: int, dim: int) -> bool:
    """Whether faiss's one-process exact search of ``n`` queries runs its
    BLAS path (``n * dim >= distance_compute_blas_threshold``, measured on
    faiss 1.15; 20 queries in older releases compare the same way)."""
    faiss = _faiss()
    if faiss is None:
        return False
    return n * dim >= faiss.cvar.distance_compute_blas_threshold


def knn_shard_bounds(n: int, dim: int,
                     world_size: int) -> List[Tuple[int, int]]:
    """The row blocks that :func:`sharded_pseudo_labels` expects.

    faiss's BLAS path cuts the queries into blocks of
    ``distance_compute_blas_query_bs`` rows and the base into blocks of
    ``distance_compute_blas_database_bs`` rows, and a product's float32
    values depend on its shape. Cutting the ranks' blocks at multiples of
    ``lcm(query_bs, database_bs)`` (4096 by default) gives every product of
    the ring the shape it has in the one-process search, hence the same
    values. The per-pair path (below the BLAS threshold) needs no alignment.
    """
    faiss = _faiss()
    align = 1
    if faiss is not None and _faiss_uses_blas(n, dim):
        align = int(np.lcm(faiss.cvar.distance_compute_blas_query_bs,
                           faiss.cvar.distance_compute_blas_database_bs))
    return shard_bounds(n, world_size, align)


def _block_knn(query: torch.Tensor, base: torch.Tensor, k: int,
               blas: bool) -> Tuple[np.ndarray, np.ndarray]:
    """k nearest ``base`` rows of every ``query`` row with the search of the
    one-process :func:`knn_search`: ``faiss.knn`` (what ``IndexFlatL2``
    runs) on CPU, forced onto the path (``blas``) that the one-process
    search of all N rows takes; torch's chunked matmul on CUDA or without
    faiss."""
    k = min(k, base.shape[0])
    faiss = _faiss()
    if not query.is_cuda and faiss is not None:
        old = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 0 if blas else 2**31 - 1
        try:
            d, i = faiss.knn(
                np.ascontiguousarray(query.float().numpy()),
                np.ascontiguousarray(base.float().numpy()), k)
        finally:
            faiss.cvar.distance_compute_blas_threshold = old
        return d, i
    from mmreid_usl.utils.search import topk_search
    d, i = topk_search(query, base, k, metric='sqeuclidean',
                       backend='torch')
    return d.cpu().numpy(), i.cpu().numpy()


def _merge_topk(d_a: np.ndarray, i_a: np.ndarray, d_b: np.ndarray,
                i_b: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row-wise k smallest of two candidate lists, ties by ascending index
    (the order of faiss's heaps)."""
    d = np.concatenate([d_a, d_b], 1)
    i = np.concatenate([i_a, i_b], 1)
    order = np.lexsort((i, d), axis=1)[:, :k]
    return (np.take_along_axis(d, order, 1),
            np.take_along_axis(i, order, 1))


def ring_knn(block: torch.Tensor,
             k: int,
             bounds: Sequence[Tuple[int, int]],
             group=None,
             threads: Optional[int] = None
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact kNN of this rank's rows against all rows, blocks ring-passed.

    ``d(i, j) = ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j`` (float32, as faiss);
    the running top-k is merged with every visiting block by
    ``(d, j)`` lexicographic order. The query is then put at rank 0 like
    :func:`knn_search`. Memory: ``O(N D / W + N k / W)``.

    The values equal the one-process search's when the blocks are
    :func:`knn_shard_bounds` and faiss runs with the same number of threads
    as there (OpenBLAS's float32 products depend on its thread split):
    ``threads`` sets faiss's OpenMP threads for the search (restored after).

    Args:
        block (Tensor): This rank's rows ``(e_r - s_r, D)``.
        k (int): Neighbours per row, self included (``k <= N``).
        bounds (Sequence[tuple]): :func:`knn_shard_bounds`.
        group: Process group.
        threads (int, optional): faiss threads during the search.

    Returns:
        tuple[Tensor, Tensor]: float32 ``sqdist`` and int64 global ``index``
        ``(e_r - s_r, k)``, ascending, on CPU.
    """
    rank, _ = _world(group)
    n = bounds[-1][1]
    blas = _faiss_uses_blas(n, block.shape[1])
    best: Dict[str, np.ndarray] = {}
    faiss = _faiss()
    old_threads = None
    if threads is not None and faiss is not None:
        old_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads)

    def visit(owner: int, rows: torch.Tensor) -> None:
        d, i = _block_knn(block, rows, k, blas)
        i = i.astype(np.int64) + bounds[owner][0]
        if not best:
            best['d'], best['i'] = d, i
        else:
            best['d'], best['i'] = _merge_topk(best['d'], best['i'], d, i, k)

    try:
        ring_pass(block, bounds, visit, group)
    finally:
        if old_threads is not None:
            faiss.omp_set_num_threads(old_threads)
    s = bounds[rank][0]
    if not best:  # this rank has no row
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    sqdist = torch.from_numpy(np.ascontiguousarray(best['d']))
    index = torch.from_numpy(np.ascontiguousarray(best['i']))
    # _put_self_first works on local row numbers
    sqdist, local = _put_self_first(sqdist, index - s)
    return sqdist, local + s
