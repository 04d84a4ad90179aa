# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Step 6 of :class:`JaccardDistance`: ``d_J`` of the overlapping pairs,
a chunk of rows at a time, with the pair budget enforced as they come."""
from typing import Iterator, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from .jaccard_encoding import _ragged_arange, _row_ids


def _overlap_sums(rows: np.ndarray, cols: np.ndarray, mins: np.ndarray,
                  r0: int,
                  n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``m_ij = Σ_k min(V_ik, V_jk)`` of one chunk of rows from its
    (i, j, k) triples, each given as ``rows[t] = i``, ``cols[t] = j`` and
    ``mins[t] = min(V_ik, V_jk)`` (every ``j >= i``, rows from ``r0``).

    The distinct (i, j) of the triples are the chunk's output pattern, so
    no sparse product is needed to find it: the pairs are the sorted unique
    keys ``(i - r0) * n + j`` and each ``m`` is the ``bincount`` of its
    triples, summed in their order (numpy's stable sort, not a dense N-wide
    scratch row per chunk row, so that a chunk holds as many rows as
    ``max_chunk_elems`` allows at any N).

    Returns:
        tuple[np.ndarray]: ``rows``, ``cols`` (int64, row-major, columns
        sorted) and float64 ``m`` of the pairs.
    """
    keys = (rows - r0) * np.int64(n) + cols
    # np.unique(return_inverse=True) by hand, ~1.3x faster: a stable sort
    # keeps the triples of a pair in their order, so the bincount sums them
    # in the same order as over the unsorted triples (identical m)
    order = np.argsort(keys, kind='stable')
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    pairs = keys[first]
    m = np.bincount(np.cumsum(first) - 1, weights=mins[order],
                    minlength=len(pairs))
    return pairs // n + r0, pairs % n, m


def _overlap_distance(m: np.ndarray) -> np.ndarray:
    """``d_J = 1 - m/(2 - m)``, clipped at 0. ``m`` is summed in float64;
    the distance itself is evaluated in float32 like the official code
    (identical rows give exactly 0)."""
    m32 = m.astype(np.float32)
    dist = np.float32(1) - m32 / (np.float32(2) - m32)
    np.maximum(dist, 0, out=dist)
    return dist


class ChunkedJaccard:
    """Step 6 of :class:`JaccardDistance` (a mixin: ``self.max_distance``,
    ``self.max_pairs`` and ``self.max_chunk_elems`` are the distance's)."""

    def _jaccard(self,
                 v: sp.csr_matrix,
                 max_distance: Optional[float] = None) -> sp.csr_matrix:
        """Step 6: ``1 - m/(2-m)`` with ``m = Σ_k min(V_ik, V_jk)``, as the
        full symmetric N×N CSR matrix (see :meth:`_jaccard_upper`)."""
        return self._symmetric_csr(
            *self._jaccard_upper(v, max_distance=max_distance), v.shape[0])

    def _jaccard_upper(
        self,
        v: sp.csr_matrix,
        row_stop: Optional[int] = None,
        max_distance: Optional[float] = None
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step 6 on the upper triangle: the pairs ``j >= i`` with
        ``i < row_stop`` (default all rows) and distance < ``max_distance``
        (default ``self.max_distance``).

        Returns:
            tuple[np.ndarray]: ``rows``, ``cols`` (row-major, columns
            sorted) and float32 ``vals``.
        """
        n = v.shape[0]
        parts, stored = [], 0
        if max_distance is None:
            max_distance = self.max_distance
        for rows, cols, vals in self._jaccard_upper_chunks(
                v, row_stop, max_distance):
            parts.append((rows, cols, vals))
            # stop as soon as the budget is exceeded
            stored = self._count_stored(stored, rows, cols, parts, n,
                                        max_distance)
        if not parts:
            return (np.zeros(0, np.int64), np.zeros(0, np.int64),
                    np.zeros(0, np.float32))
        return tuple(np.concatenate(p) for p in zip(*parts))

    def _jaccard_upper_chunks(self,
                              v: sp.csr_matrix,
                              row_stop: Optional[int] = None,
                              max_distance: Optional[float] = None
                              ) -> Iterator:
        """:meth:`_jaccard_upper` one chunk of consecutive rows at a time
        (a generator of ``(rows, cols, vals)``), so that a caller keeping
        only part of the pairs never holds all of them.

        ``m`` is symmetric, so only pairs ``j >= i`` are expanded: column k
        is stored with rows ascending, so for the entry (i, k) the rows
        ``j >= i`` of that column are the ones from its own position on.
        """
        n = v.shape[0]
        row_stop = n if row_stop is None else min(int(row_stop), n)
        if max_distance is None:
            max_distance = self.max_distance
        v_rows = _row_ids(v.indptr)
        # column-major (CSC) order of the entries; the stable sort keeps the
        # rows of every column ascending
        perm = np.argsort(v.indices, kind='stable')
        csc_rows, csc_data = v_rows[perm], v.data[perm]
        col_ptr = np.concatenate(
            [[0], np.cumsum(np.bincount(v.indices, minlength=n))])
        pos = np.empty(v.nnz, dtype=np.int64)
        pos[perm] = np.arange(v.nnz)
        entry_len = col_ptr[v.indices + 1] - pos
        del col_ptr
        # every row of V is non-empty (i ∈ E(i)), so reduceat is safe
        cum = np.concatenate(
            [[0], np.cumsum(np.add.reduceat(entry_len, v.indptr[:-1]))])
        r0 = 0
        while r0 < row_stop:
            r1 = int(np.searchsorted(cum, cum[r0] + self.max_chunk_elems,
                                     side='right')) - 1
            r1 = min(max(r1, r0 + 1), row_stop)
            e0, e1 = v.indptr[r0], v.indptr[r1]
            lens = entry_len[e0:e1]
            src = _ragged_arange(pos[e0:e1], lens)
            rep = np.repeat(np.arange(e1 - e0), lens)
            mins = np.minimum(v.data[e0:e1][rep], csc_data[src])
            u_rows, u_cols, m = _overlap_sums(v_rows[e0:e1][rep],
                                              csc_rows[src], mins, r0, n)
            del src, rep, mins
            dist = _overlap_distance(m)
            keep = dist < max_distance
            yield u_rows[keep], u_cols[keep], dist[keep]
            r0 = r1

    @staticmethod
    def _symmetric_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray,
                       n: int) -> sp.csr_matrix:
        """Full symmetric CSR (columns sorted, explicit zeros kept) from the
        upper triangle given row-major with columns sorted."""
        upper_ptr = np.concatenate(
            [[0], np.cumsum(np.bincount(rows, minlength=n))])
        strict = cols > rows
        # lower triangle = transpose of the strict upper one (CSR -> CSC is
        # a structural copy, zeros included)
        s_rows, s_cols = rows[strict], cols[strict]
        lower = sp.csr_matrix(
            (vals[strict], s_cols,
             np.concatenate([[0], np.cumsum(
                 np.bincount(s_rows, minlength=n))])),
            shape=(n, n)).tocsc()
        len_l, len_u = np.diff(lower.indptr), np.diff(upper_ptr)
        indptr = np.concatenate([[0], np.cumsum(len_l + len_u)])
        indices = np.empty(indptr[-1], dtype=np.int32)
        data = np.empty(indptr[-1], dtype=np.float32)
        l_rows = _row_ids(lower.indptr)
        dest_l = indptr[l_rows] + np.arange(lower.nnz) - lower.indptr[l_rows]
        dest_u = (indptr[rows] + len_l[rows] + np.arange(len(rows)) -
                  upper_ptr[rows])
        indices[dest_l], data[dest_l] = lower.indices, lower.data
        indices[dest_u], data[dest_u] = cols, vals
        return sp.csr_matrix((data, indices, indptr), shape=(n, n))
