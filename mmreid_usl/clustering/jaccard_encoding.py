# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Steps 1-5 of :class:`JaccardDistance`: the k-reciprocal encoding ``V``.

The k-reciprocal sets, their expansion, the softmax encoding and the query
expansion (Zhong et al., CVPR 2017), as sparse matrices; the CSR helpers are
shared with the sharded pipeline and the re-ranking.
"""
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch


def _row_ids(indptr: np.ndarray) -> np.ndarray:
    """Row index of every stored entry of a CSR structure."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _ragged_arange(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lens.sum())
    offsets = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lens)


def _list_matrix(index: np.ndarray, length: int, n: int) -> sp.csr_matrix:
    """0/1 CSR ``A[i, j] = 1`` iff j is in the first ``length`` of i's list."""
    return sp.csr_matrix(
        (np.ones(n * length, dtype=np.int32), index[:, :length].ravel(),
         np.arange(n + 1, dtype=np.int64) * length),
        shape=(n, n))


def _reciprocal(index: np.ndarray, length: int, n: int) -> sp.csr_matrix:
    """k-reciprocal sets as a symmetric 0/1 CSR matrix.

    ``R[i, j] = 1`` iff j is in the first ``length`` entries of i's list and i
    is in the first ``length`` entries of j's list.
    """
    a = _list_matrix(index, length, n)
    r = a.multiply(a.T).tocsr()
    r.sort_indices()
    return r


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


def _known_pairs(index: np.ndarray, sqdist: Optional[torch.Tensor],
                 precision: str, rows: np.ndarray, cols: np.ndarray,
                 norms: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`_knn_pair_lookup` where the kNN distances are fp32 ones;
    otherwise no pair is known (``ip`` uninitialised, every pair to do)."""
    if sqdist is not None and precision == 'fp32':
        return _knn_pair_lookup(index, sqdist.cpu().numpy(), rows, cols,
                                norms)
    return (np.empty(len(rows), dtype=np.float64),
            np.ones(len(rows), dtype=bool))


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


def _expand_sets(r1: sp.csr_matrix, rh: sp.csr_matrix) -> sp.csr_matrix:
    """Step 3 for the rows of ``r1`` (``R(i, k1)``) given all the rows of
    ``rh`` (``R(c, k1/2)``, symmetric): the 0/1 pattern of ``E(i)``."""
    half_size = np.diff(rh.indptr)
    # |R(c, k1/2) ∩ R(i, k1)| for every c in R(i, k1)  (R is symmetric)
    overlap = (r1 @ rh).multiply(r1).tocoo()
    keep = overlap.data > 2 / 3 * half_size[overlap.col]
    sel = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int32),
         (overlap.row[keep], overlap.col[keep])),
        shape=r1.shape)
    expanded = (r1 + sel @ rh).tocsr()
    expanded.sort_indices()
    return expanded


class KReciprocalEncoding:
    """Steps 2-5 of :class:`JaccardDistance` (a mixin: ``self.k1``,
    ``self.k2`` and ``self.knn_precision`` are the distance's)."""

    def _encode(self, feats: torch.Tensor, sqdist: Optional[torch.Tensor],
                index: np.ndarray) -> sp.csr_matrix:
        """Steps 2-4: reciprocal sets, expansion and softmax encoding V."""
        expanded = self._expand(index)
        rows = _row_ids(expanded.indptr)
        d2 = self._pair_sqdist(feats, sqdist, index, rows,
                               expanded.indices.astype(np.int64))
        return self._softmax_encode(expanded, d2)

    def _expand(self, index: np.ndarray) -> sp.csr_matrix:
        """Steps 2-3: the expanded k-reciprocal sets ``E(i)`` as a 0/1 CSR
        matrix (columns sorted). ``R(i, k1)`` uses all ``index.shape[1]``
        entries of each list, ``R(i, k1/2)`` the first
        ``round(self.k1/2) + 1``."""
        n, k1 = index.shape
        k_half = int(np.around(self.k1 / 2))
        r1 = _reciprocal(index, k1, n)
        rh = _reciprocal(index, min(k_half + 1, k1), n)
        return _expand_sets(r1, rh)

    @staticmethod
    def _softmax_encode(expanded: sp.csr_matrix,
                        d2: np.ndarray) -> sp.csr_matrix:
        """Step 4: ``V[i, j] = softmax_{j in E(i)}(-d2_ij)`` on the pattern of
        ``expanded`` (``d2`` float64, one value per stored entry)."""
        return _softmax_rows(expanded, d2)

    def _pair_sqdist(self, feats: torch.Tensor, sqdist: Optional[torch.Tensor],
                     index: np.ndarray, rows: np.ndarray,
                     cols: np.ndarray) -> np.ndarray:
        """``2 - 2 x_i·x_j`` (float64) for the given pairs.

        Pairs found in the fp32 kNN lists (of i or of j; ~90% of them) reuse
        the kNN distance (as ``ip = (|x_i|² + |x_j|² - sqdist)/2``); the
        others are gathered and multiplied in chunks.
        """
        x = feats.detach().float()
        norms = (x * x).sum(1).cpu().numpy().astype(np.float64)
        ip, todo = _known_pairs(index, sqdist, self.knn_precision, rows,
                                cols, norms)
        miss = np.flatnonzero(todo)
        if len(miss) and not x.is_cuda:
            # small chunks keep both gathered blocks in cache; numpy's
            # gather + einsum is ~10x cheaper than torch.index_select here
            xn = x.numpy()
            r_m, c_m = rows[miss], cols[miss]
            step = max(1, (1 << 19) // max(x.shape[1], 1))
            for s in range(0, len(miss), step):
                ip[miss[s:s + step]] = np.einsum(
                    'pd,pd->p', xn[r_m[s:s + step]], xn[c_m[s:s + step]])
        elif len(miss):
            r_t = torch.from_numpy(rows[miss]).to(x.device)
            c_t = torch.from_numpy(cols[miss]).to(x.device)
            step = max(1, (1 << 24) // max(x.shape[1], 1))
            out = torch.empty(len(miss), dtype=torch.float32, device=x.device)
            with torch.no_grad():
                for s in range(0, len(miss), step):
                    a = x.index_select(0, r_t[s:s + step])
                    b = x.index_select(0, c_t[s:s + step])
                    out[s:s + step] = torch.einsum('pd,pd->p', a, b)
            ip[miss] = out.cpu().numpy()
        return 2.0 - 2.0 * ip

    def _query_expand(self, v: sp.csr_matrix,
                      index: np.ndarray) -> sp.csr_matrix:
        """Step 5: ``V_i <- mean_{j in top-k2(i)} V_j`` (columns sorted)."""
        n = v.shape[0]
        k2 = min(self.k2, index.shape[1])
        if k2 > 1:
            q = sp.csr_matrix(
                (np.full(n * k2, 1.0 / k2), index[:, :k2].ravel(),
                 np.arange(n + 1, dtype=np.int64) * k2),
                shape=(n, n))
            v = (q @ v).tocsr()
        v.sort_indices()
        return v
