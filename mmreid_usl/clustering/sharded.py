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

Hand-written here because no library has it: the ring kNN (faiss and torch
only search one address space) and the row-block form of the k-reciprocal
Jaccard (the official code and :class:`JaccardDistance` work on all rows).
"""
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist

from .jaccard import JaccardDistance, PairBudgetError
from .knn import _put_self_first

__all__ = [
    'shard_bounds', 'knn_shard_bounds', 'ring_knn', 'ring_pass', 'sharded_jaccard_upper',
    'sharded_pseudo_labels', 'jaccard_upper_rows'
]


# ----------------------------------------------------------------------
# process-group helpers
# ----------------------------------------------------------------------
def _world(group=None) -> Tuple[int, int]:
    """``(rank, world_size)`` in ``group`` ((0, 1) without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _comm_device(group=None) -> torch.device:
    """Device of the collectives: CUDA for NCCL, CPU otherwise."""
    if dist.is_available() and dist.is_initialized() and \
            dist.get_backend(group) == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _global_rank(group, rank: int) -> int:
    """The global rank of ``rank`` of ``group`` (what send/recv take)."""
    if group is None:
        return rank
    return dist.get_global_rank(group, rank)


def shard_bounds(n: int, world_size: int,
                 align: int = 1) -> List[Tuple[int, int]]:
    """Row blocks of the ranks, contiguous and in rank order.

    The cut between rank ``r - 1`` and ``r`` is ``round(r N / W / a) * a``
    (``a = align``), clipped to ``[0, N]``: block sizes differ by at most
    ``a`` (a rank may get no row when ``N < W a``).
    """
    cuts = [0] + [
        min(n, int(round(r * n / world_size / align)) * align)
        for r in range(1, world_size)
    ] + [n]
    return list(zip(cuts[:-1], cuts[1:]))


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


def _all_gather_rows(t: torch.Tensor, sizes: Sequence[int],
                     group=None) -> torch.Tensor:
    """All-gather row blocks of (possibly) different lengths ``sizes`` (one
    per rank, in rank order) and concatenate them in rank order."""
    rank, world = _world(group)
    if world == 1:
        return t
    dev = _comm_device(group)
    width = max(sizes)
    if width == 0:
        return t
    buf = torch.zeros((width, ) + tuple(t.shape[1:]), dtype=t.dtype,
                      device=dev)
    buf[:t.shape[0]] = t.to(dev)
    out = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(out, buf, group=group)
    return torch.cat([o[:s] for o, s in zip(out, sizes)]).to(t.device)


def _all_gather_1d(arr: np.ndarray, group=None) -> List[np.ndarray]:
    """All-gather one 1-D numpy array per rank (any lengths); returns the
    arrays of all ranks in rank order."""
    rank, world = _world(group)
    if world == 1:
        return [arr]
    dev = _comm_device(group)
    size = torch.tensor([len(arr)], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    t = torch.from_numpy(np.ascontiguousarray(arr))
    got = _all_gather_rows(t, sizes, group)
    out, start = [], 0
    for s in sizes:
        out.append(got[start:start + s].cpu().numpy())
        start += s
    return out


def _gather_1d_to_root(arr: np.ndarray, group=None) -> Optional[np.ndarray]:
    """Concatenation (rank order) of every rank's 1-D array on rank 0 (None
    on the other ranks). Point-to-point, so only rank 0 holds the whole."""
    rank, world = _world(group)
    if world == 1:
        return arr
    dev = _comm_device(group)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    size = torch.tensor([len(arr)], dtype=torch.long, device=dev)
    if rank != 0:
        dist.send(size, _global_rank(group, 0), group=group)
        if len(arr):
            dist.send(t.to(dev), _global_rank(group, 0), group=group)
        return None
    parts = [arr]
    for src in range(1, world):
        dist.recv(size, _global_rank(group, src), group=group)
        buf = torch.empty(int(size), dtype=t.dtype, device=dev)
        if int(size):
            dist.recv(buf, _global_rank(group, src), group=group)
        parts.append(buf.cpu().numpy())
    return np.concatenate(parts)


def _any_rank(flag: bool, group=None) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    rank, world = _world(group)
    if world == 1:
        return flag
    t = torch.tensor([int(flag)], device=_comm_device(group))
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item())


def ring_pass(block: torch.Tensor,
              bounds: Sequence[Tuple[int, int]],
              visit: Callable[[int, torch.Tensor], None],
              group=None) -> None:
    """Pass the row blocks round the ring and ``visit`` each one.

    Rank ``r`` calls ``visit(b, block_b)`` for ``b = r, r - 1, ..., r + 1``
    (mod W), ``block_b`` being rank b's rows: at step t it sends the block it
    holds to ``r + 1``, receives the next from ``r - 1`` (non-blocking, so the
    transfer overlaps ``visit``). At most two blocks are held at a time.
    Empty blocks are neither sent nor visited (both ends know the sizes).

    Args:
        block (Tensor): This rank's rows ``(e_r - s_r, D)``.
        bounds (Sequence[tuple]): :func:`shard_bounds` of all ranks.
        visit (Callable): ``visit(owner_rank, rows)``.
        group: Process group (default: the world).
    """
    rank, world = _world(group)
    dev = _comm_device(group)
    cur, owner = block, rank
    for step in range(world):
        reqs, nxt = [], None
        if step < world - 1:
            src_owner = (owner - 1) % world
            s, e = bounds[src_owner]
            nxt = torch.empty((e - s, ) + tuple(block.shape[1:]),
                              dtype=block.dtype, device=dev)
            if cur.shape[0]:
                reqs.append(
                    dist.isend(cur.to(dev).contiguous(),
                               _global_rank(group, (rank + 1) % world),
                               group=group))
            if e > s:
                reqs.append(
                    dist.irecv(nxt, _global_rank(group, (rank - 1) % world),
                               group=group))
        if cur.shape[0]:
            visit(owner, cur)
        for req in reqs:
            req.wait()
        if nxt is not None:
            cur, owner = nxt.to(block.device), (owner - 1) % world


# ----------------------------------------------------------------------
# 1. ring kNN
# ----------------------------------------------------------------------
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


@torch.no_grad()
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


# ----------------------------------------------------------------------
# 3. Jaccard rows of a block (same arithmetic as JaccardDistance)
# ----------------------------------------------------------------------
def _row_ids(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _ragged_arange(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    total = int(lens.sum())
    offsets = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lens)


def _list_matrix(index: np.ndarray, length: int, n: int) -> sp.csr_matrix:
    """0/1 CSR ``A[i, j] = 1`` iff j is in the first ``length`` of i's list."""
    return sp.csr_matrix(
        (np.ones(n * length, dtype=np.int32), index[:, :length].ravel(),
         np.arange(n + 1, dtype=np.int64) * length),
        shape=(n, n))


def _reciprocal_rows(index: np.ndarray, length: int, s: int,
                     e: int) -> sp.csr_matrix:
    """Rows ``s:e`` of the k-reciprocal matrix ``R = A ∘ Aᵀ`` (int counts,
    columns sorted), without the other rows' products."""
    n = index.shape[0]
    a = _list_matrix(index, length, n)
    r = a[s:e].multiply(a.T.tocsr()[s:e]).tocsr()
    r.sort_indices()
    return r


def expand_rows(index: np.ndarray, k1_param: int, s: int,
                e: int) -> sp.csr_matrix:
    """Steps 2-3 of :class:`JaccardDistance` for the rows ``s:e``: the
    expanded k-reciprocal sets ``E(i)`` (pattern, columns sorted).

    ``E(i) = R(i, k1) ∪ {R(c, k1/2) : c ∈ R(i, k1),
    |R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|}``; ``R(i, k1/2)`` uses the
    first ``round(k1_param / 2) + 1`` entries of each list.
    """
    n, k1 = index.shape
    k_half = min(int(np.around(k1_param / 2)) + 1, k1)
    r1 = _reciprocal_rows(index, k1, s, e)
    a_h = _list_matrix(index, k_half, n)
    rh = a_h.multiply(a_h.T).tocsr()
    rh.sort_indices()
    half_size = np.diff(rh.indptr)
    overlap = (r1 @ rh).multiply(r1).tocoo()
    keep = overlap.data > 2 / 3 * half_size[overlap.col]
    sel = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int32),
         (overlap.row[keep], overlap.col[keep])),
        shape=(e - s, n))
    expanded = (r1 + sel @ rh).tocsr()
    expanded.sort_indices()
    return expanded


def _knn_pair_lookup(index: np.ndarray, sqdist: np.ndarray, rows: np.ndarray,
                     cols: np.ndarray, norms: np.ndarray
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """``x_i . x_j`` of the pairs found in the kNN lists (first in i's list,
    then in j's), as ``(|x_i|^2 + |x_j|^2 - d_ij) / 2`` in float64.

    Returns:
        tuple: ``ip`` float64 and the bool mask of the pairs still to do.
    """
    n, k1 = index.shape
    ip = np.empty(len(rows), dtype=np.float64)
    todo = np.ones(len(rows), dtype=bool)
    knn_keys = (np.arange(n, dtype=np.int64)[:, None] * n + index).ravel()
    order = np.argsort(knn_keys, kind='stable')
    knn_keys = knn_keys[order]
    knn_d = sqdist[:, :k1].astype(np.float64).ravel()[order]
    del order
    for keys in (rows * n + cols, cols * n + rows):
        sub = np.flatnonzero(todo)
        pos = np.minimum(np.searchsorted(knn_keys, keys[sub]),
                         len(knn_keys) - 1)
        hit = knn_keys[pos] == keys[sub]
        found = sub[hit]
        ip[found] = (norms[rows[found]] + norms[cols[found]] -
                     knn_d[pos[hit]]) / 2
        todo[found] = False
    return ip, todo


def _pair_ip(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``a_p . b_p`` for every row p (float32), as JaccardDistance's misses:
    numpy ``einsum`` on CPU, torch ``einsum`` on CUDA."""
    if a.is_cuda:
        return torch.einsum('pd,pd->p', a, b).cpu().numpy()
    return np.einsum('pd,pd->p', a.numpy(), b.numpy())


def _softmax_rows(expanded: sp.csr_matrix, d2: np.ndarray) -> sp.csr_matrix:
    """Step 4 on a row block: ``V[i, j] = softmax_{j in E(i)}(-d2_ij)``
    (float64, row-minimum shift), shape ``(rows, N)``."""
    rows = _row_ids(expanded.indptr)
    cols = expanded.indices.astype(np.int64)
    d2 = np.array(d2, dtype=np.float64)
    starts = expanded.indptr[:-1]
    d2 -= np.minimum.reduceat(d2, starts)[rows]
    w = np.exp(-d2)
    w /= np.add.reduceat(w, starts)[rows]
    return sp.csr_matrix((w, cols, expanded.indptr), shape=expanded.shape)


def _stack_csr(parts: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
               n: int) -> sp.csr_matrix:
    """Vertical stack of CSR row blocks given as (indptr, indices, data)."""
    indptr = [np.zeros(1, np.int64)]
    offset = 0
    for p, _, _ in parts:
        indptr.append(p[1:].astype(np.int64) + offset)
        offset += int(p[-1])
    return sp.csr_matrix(
        (np.concatenate([d for _, _, d in parts]),
         np.concatenate([i for _, i, _ in parts]), np.concatenate(indptr)),
        shape=(n, n))


def _all_gather_csr(block: sp.csr_matrix, n: int,
                    group=None) -> sp.csr_matrix:
    """All row blocks of a CSR matrix (rank order) on every rank."""
    ptrs = _all_gather_1d(block.indptr.astype(np.int64), group)
    inds = _all_gather_1d(block.indices.astype(np.int32), group)
    data = _all_gather_1d(block.data, group)
    full = _stack_csr(list(zip(ptrs, inds, data)), n)
    full.has_sorted_indices = True
    return full


def jaccard_upper_rows(v: sp.csr_matrix,
                       start: int,
                       stop: int,
                       max_distance: float = 1.0,
                       max_chunk_elems: int = 1 << 22,
                       vt: Optional[sp.csr_matrix] = None,
                       on_chunk: Optional[Callable[[int], None]] = None
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 6 of :class:`JaccardDistance` for the rows ``start:stop``:
    ``d_J(i, j) = max(0, 1 - m/(2 - m))``, ``m = Σ_k min(V^_ik, V^_jk)``,
    for ``j >= i`` and ``d_J < max_distance``.

    ``m`` is the (+, min) sparse product that no library provides; each
    ``m_ij`` is summed in float64 over ``k`` ascending (``np.bincount`` in
    the order of the (i, j, k) triples), ``d_J`` evaluated in float32, exactly
    as ``JaccardDistance._jaccard_upper_chunks`` does, so the values are
    bit-identical whatever the row range.

    Args:
        v (scipy.sparse.csr_matrix): The full query-expanded ``V^`` (N, N),
            columns sorted.
        start, stop (int): The row range.
        max_distance (float): Keep pairs with ``d_J < max_distance``.
        max_chunk_elems (int): Bound on the (i, j, k) triples expanded at a
            time.
        vt (scipy.sparse.csr_matrix, optional): ``v.T.tocsr()`` if known.
        on_chunk (Callable, optional): Called with the running count of
            kept pairs after every chunk (budget checks).

    Returns:
        tuple[np.ndarray]: ``rows``, ``cols`` int64 (row-major, columns
        sorted) and float32 ``vals``.
    """
    n = v.shape[0]
    if vt is None:
        vt = v.T.tocsr()  # row k of vt: the rows i having column k, sorted
    # position of every entry (i, k) of the rows in vt's row k: i's rank
    # among that column's rows (vt's keys k * n + i are globally sorted)
    e_start, e_stop = v.indptr[start], v.indptr[stop]
    ent_rows = _row_ids(v.indptr[start:stop + 1] - e_start) + start
    ent_cols = v.indices[e_start:e_stop].astype(np.int64)
    vt_keys = _row_ids(vt.indptr) * np.int64(n) + vt.indices
    pos = np.searchsorted(vt_keys, ent_cols * n + ent_rows)
    del vt_keys
    entry_len = vt.indptr[ent_cols + 1] - pos
    row_elems = np.add.reduceat(entry_len, v.indptr[start:stop] - e_start) \
        if stop > start else np.zeros(0, np.int64)
    cum = np.concatenate([[0], np.cumsum(row_elems)])
    max_rows = max(1, (1 << 24) // n)
    scratch = np.empty(min(n, max_rows) * n, dtype=np.int64)
    out_r, out_c, out_v = [], [], []
    kept = 0
    r0 = start
    while r0 < stop:
        c0 = r0 - start
        c1 = int(np.searchsorted(cum, cum[c0] + max_chunk_elems,
                                 side='right')) - 1
        r1 = min(max(c1 + start, r0 + 1), r0 + max_rows, stop)
        pattern = (v[r0:r1] @ vt).tocsr()
        pattern.sort_indices()
        p_rows = _row_ids(pattern.indptr) + r0
        upper = pattern.indices >= p_rows
        u_rows, u_cols = p_rows[upper], pattern.indices[upper]
        del pattern, p_rows, upper
        a0, a1 = v.indptr[r0] - e_start, v.indptr[r1] - e_start
        lens = entry_len[a0:a1]
        src = _ragged_arange(pos[a0:a1], lens)
        rep = np.repeat(np.arange(a1 - a0), lens)
        mins = np.minimum(v.data[e_start + a0:e_start + a1][rep],
                          vt.data[src])
        keys = (ent_rows[a0:a1][rep] - r0) * n + vt.indices[src]
        del src, rep
        p_keys = (u_rows - r0) * n + u_cols
        scratch[p_keys] = np.arange(len(p_keys))
        m = np.bincount(scratch[keys], weights=mins, minlength=len(p_keys))
        del keys, mins, p_keys
        m32 = m.astype(np.float32)
        d = np.float32(1) - m32 / (np.float32(2) - m32)
        np.maximum(d, 0, out=d)
        keep = d < max_distance
        out_r.append(u_rows[keep].astype(np.int64))
        out_c.append(u_cols[keep].astype(np.int64))
        out_v.append(d[keep])
        kept += 2 * int(keep.sum()) - int(
            (out_r[-1] == out_c[-1]).sum())
        if on_chunk is not None:
            on_chunk(kept)
        r0 = r1
    if not out_r:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64),
                np.zeros(0, np.float32))
    return (np.concatenate(out_r), np.concatenate(out_c),
            np.concatenate(out_v))


@torch.no_grad()
def sharded_jaccard_upper(
    block: torch.Tensor,
    sqdist: torch.Tensor,
    index: torch.Tensor,
    jaccard: JaccardDistance,
    bounds: Sequence[Tuple[int, int]],
    group=None,
    timing: Optional[Dict[str, float]] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This rank's upper-triangle Jaccard pairs, from the gathered kNN.

    Args:
        block (Tensor): This rank's features ``(e_r - s_r, D)``.
        sqdist (Tensor): All kNN squared distances ``(N, >= k1)`` float32.
        index (Tensor): All kNN lists ``(N, >= k1)``, self at rank 0.
        jaccard (JaccardDistance): Parameters ``k1, k2, knn_precision,
            max_distance, max_chunk_elems, max_pairs``.
        bounds (Sequence[tuple]): :func:`shard_bounds`.
        group: Process group.
        timing (dict, optional): Filled with the stage times (s).

    Returns:
        tuple[np.ndarray]: ``rows``, ``cols`` (global, row-major, columns
        sorted, ``cols >= rows``) and float32 ``vals`` of this rank's rows.

    Raises:
        PairBudgetError: On every rank, when the pairs exceed
            ``jaccard.max_pairs``.
    """
    timing = {} if timing is None else timing
    rank, _ = _world(group)
    s, e = bounds[rank]
    n = index.shape[0]
    k1 = min(jaccard.k1, n)
    t = time.perf_counter()
    index_np = np.ascontiguousarray(
        index[:, :k1].cpu().numpy().astype(np.int64))
    # steps 2-3: expanded sets of the block's rows
    expanded = expand_rows(index_np, jaccard.k1, s, e)
    rows = _row_ids(expanded.indptr) + s
    cols = expanded.indices.astype(np.int64)
    # squared norms: every rank its own rows (same per-row torch reduction
    # as JaccardDistance), gathered
    x = block.detach().float()
    norms_t = _all_gather_rows((x * x).sum(1), [b - a for a, b in bounds],
                               group)
    norms = norms_t.cpu().numpy().astype(np.float64)
    # step 4: d2 = 2 - 2 x_i.x_j; kNN reuse, then the misses by ring pass
    if sqdist is not None and jaccard.knn_precision == 'fp32':
        ip, todo = _knn_pair_lookup(index_np, sqdist.cpu().numpy(), rows,
                                    cols, norms)
    else:
        ip = np.empty(len(rows), dtype=np.float64)
        todo = np.ones(len(rows), dtype=bool)
    miss = np.flatnonzero(todo)
    miss_owner = np.searchsorted([b for _, b in bounds], cols[miss],
                                 side='right')
    step = max(1, (1 << 19) // max(x.shape[1], 1))

    def visit(owner: int, other: torch.Tensor) -> None:
        sel = miss[miss_owner == owner]
        if not len(sel):
            return
        r_loc = torch.from_numpy(rows[sel] - s).to(x.device)
        c_loc = torch.from_numpy(cols[sel] - bounds[owner][0]).to(
            other.device)
        for a in range(0, len(sel), step):
            ip[sel[a:a + step]] = _pair_ip(
                x.index_select(0, r_loc[a:a + step]),
                other.float().index_select(0, c_loc[a:a + step]))

    ring_pass(x, bounds, visit, group)
    v_block = _softmax_rows(expanded, 2.0 - 2.0 * ip)
    del expanded, rows, cols, ip, todo
    timing['encode_s'] = time.perf_counter() - t
    # step 5: query expansion needs the V rows of the neighbours
    t = time.perf_counter()
    v_full = _all_gather_csr(v_block, n, group)
    del v_block
    k2 = min(jaccard.k2, index_np.shape[1])
    if k2 > 1:
        q = sp.csr_matrix(
            (np.full((e - s) * k2, 1.0 / k2), index_np[s:e, :k2].ravel(),
             np.arange(e - s + 1, dtype=np.int64) * k2),
            shape=(e - s, n))
        vq = (q @ v_full).tocsr()
    else:
        vq = v_full[s:e].tocsr()
    vq.sort_indices()
    del v_full
    v_hat = _all_gather_csr(vq, n, group)
    del vq
    timing['expand_s'] = time.perf_counter() - t
    # step 6 with the pair budget, agreed by all ranks
    t = time.perf_counter()
    err = None
    try:
        jaccard.check_pair_budget(v_hat)
    except PairBudgetError as exc:
        err = exc
    if _any_rank(err is not None, group):
        raise err or PairBudgetError(
            'JaccardDistance: pair budget exceeded (estimated on every '
            'rank; see rank 0 for the numbers).')
    max_pairs = jaccard.max_pairs

    def on_chunk(kept: int) -> None:
        if max_pairs is not None and kept > max_pairs:
            raise PairBudgetError(
                f'JaccardDistance: rank {rank} alone keeps more than '
                f'max_pairs={max_pairs:,} pairs.')

    err = None
    try:
        out = jaccard_upper_rows(v_hat, s, e, jaccard.max_distance,
                                 jaccard.max_chunk_elems, on_chunk=on_chunk)
    except PairBudgetError as exc:
        err, out = exc, None
    if _any_rank(err is not None, group):
        raise err or PairBudgetError(
            'JaccardDistance: another rank exceeded the pair budget.')
    timing['jaccard_rows_s'] = time.perf_counter() - t
    return out


def _broadcast_labels(labels: Optional[np.ndarray], n: int,
                      group=None) -> np.ndarray:
    rank, world = _world(group)
    if world == 1:
        return labels
    t = torch.from_numpy(labels) if rank == 0 else torch.empty(
        n, dtype=torch.long)
    t = t.to(_comm_device(group))
    dist.broadcast(t, _global_rank(group, 0), group=group)
    return t.cpu().numpy()


@torch.no_grad()
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
