# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Step 3 of the sharded pseudo-labelling: the Jaccard rows of a block,
with the same arithmetic as :class:`JaccardDistance`."""
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from ..jaccard import JaccardDistance, PairBudgetError
from ..jaccard_chunks import _overlap_distance, _overlap_sums
from ..jaccard_encoding import (_expand_sets, _known_pairs, _list_matrix,
                                _ragged_arange, _reciprocal, _row_ids,
                                _softmax_rows)
from .comm import (_all_gather_csr, _all_gather_rows, _any_rank, _world,
                   ring_pass)


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
    return _expand_sets(r1, _reciprocal(index, k_half, n))


def _pair_ip(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """``a_p . b_p`` for every row p (float32), as JaccardDistance's misses:
    numpy ``einsum`` on CPU, torch ``einsum`` on CUDA."""
    if a.is_cuda:
        return torch.einsum('pd,pd->p', a, b).cpu().numpy()
    return np.einsum('pd,pd->p', a.numpy(), b.numpy())


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
    out_r, out_c, out_v = [], [], []
    kept = 0
    r0 = start
    while r0 < stop:
        c0 = r0 - start
        c1 = int(np.searchsorted(cum, cum[c0] + max_chunk_elems,
                                 side='right')) - 1
        r1 = min(max(c1 + start, r0 + 1), stop)
        a0, a1 = v.indptr[r0] - e_start, v.indptr[r1] - e_start
        lens = entry_len[a0:a1]
        src = _ragged_arange(pos[a0:a1], lens)
        rep = np.repeat(np.arange(a1 - a0), lens)
        mins = np.minimum(v.data[e_start + a0:e_start + a1][rep],
                          vt.data[src])
        u_rows, u_cols, m = _overlap_sums(ent_rows[a0:a1][rep],
                                          vt.indices[src].astype(np.int64),
                                          mins, r0, n)
        del src, rep, mins
        d = _overlap_distance(m)
        keep = d < max_distance
        out_r.append(u_rows[keep])
        out_c.append(u_cols[keep])
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
    ip, todo = _known_pairs(index_np, sqdist, jaccard.knn_precision, rows,
                            cols, norms)
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
