# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Sparse k-reciprocal Jaccard distance used for pseudo-labelling."""
from typing import Iterator, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_int
from .base import BaseDistance, DistanceMatrix, LabelingContext
from .knn import knn_search

#: Rows whose distances are evaluated to estimate the stored pairs before the
#: Jaccard step allocates them (all rows when there are fewer).
PAIR_SAMPLE_ROWS = 64
#: Approximate peak memory per stored pair, from the Jaccard step to the end
#: of DBSCAN (measured: 10,000 copies of one image, about 5e7 pairs, 7 GB).
BYTES_PER_PAIR = 140


class PairBudgetError(RuntimeError):
    """More pairs would be stored than ``JaccardDistance.max_pairs`` allows."""


def _row_ids(indptr: np.ndarray) -> np.ndarray:
    """Row index of every stored entry of a CSR structure."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _ragged_arange(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lens.sum())
    offsets = np.cumsum(lens) - lens
    return np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lens)


def _reciprocal(index: np.ndarray, length: int, n: int) -> sp.csr_matrix:
    """k-reciprocal sets as a symmetric 0/1 CSR matrix.

    ``R[i, j] = 1`` iff j is in the first ``length`` entries of i's list and i
    is in the first ``length`` entries of j's list.
    """
    a = sp.csr_matrix(
        (np.ones(n * length, dtype=np.int32), index[:, :length].ravel(),
         np.arange(n + 1, dtype=np.int64) * length),
        shape=(n, n))
    r = a.multiply(a.T).tocsr()
    r.sort_indices()
    return r


@TASK_UTILS.register_module()
class JaccardDistance(BaseDistance):
    """k-reciprocal encoding Jaccard distance, computed sparsely.

    The distance of Zhong et al., "Re-ranking Person Re-identification with
    k-reciprocal Encoding" (CVPR 2017, https://arxiv.org/abs/1701.08398), in
    the variant that the code of Cluster Contrast, ICE, DCMIP, SpCL and
    OpenUnReID uses for pseudo-labels
    (``docs/algorithms/common.md#jaccard-distance``), with all of that
    code's quirks:

    1. kNN lists of ``k1`` entries, the point itself at rank 0.
    2. k-reciprocal sets ``R(i, k)`` from the first ``k1`` entries and
       ``R(i, k1/2)`` from the first ``round(k1/2) + 1`` entries.
    3. ``E(i) = R(i, k1) ∪ {R(c, k1/2) : c ∈ R(i, k1),
       |R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|}``.
    4. ``V[i, j] = exp(-d²_ij) / Σ_{j'∈E(i)} exp(-d²_ij')`` for j ∈ E(i),
       with ``d²_ij = 2 - 2 x_i·x_j``.
    5. Query expansion: ``V_i ← mean_{j ∈ top-k2(i)} V_j``.
    6. ``d_J(i, j) = 1 - m/(2 - m)``, ``m = Σ_k min(V_ik, V_jk)``, clipped
       at 0.

    The official code holds V and d_J as dense N×N arrays. Here every step is
    a sparse matrix: V has O(N·|E|) entries, and ``m`` is non-zero only for
    pairs whose expanded sets overlap, so only those pairs (the ones with
    ``d_J < 1``) are stored. ``m`` is a (+, min) sparse product, which no
    library provides; it is hand-written below with vectorised numpy: all
    (i, j, k) triples sharing a column k are expanded per chunk of rows and
    summed with ``np.bincount`` into the known output pattern (the pattern of
    ``V Vᵀ``, computed per chunk of rows too). V and m are computed in
    float64, ``d_J`` in float32 as in the official code; values agree with
    the dense float32 formulation to float32 rounding (~1e-6).

    Args:
        k1 (int): Neighbourhood size (30 in CC/ICE/DCMIP). Defaults to 30.
        k2 (int): Query-expansion size (k2 <= k1). Defaults to 6.
        knn_backend (str): ``'auto'``, ``'faiss'`` or ``'torch'``, see
            :func:`knn_search`. Defaults to ``'auto'``.
        knn_precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'`` for the kNN
            matrix product. With reduced precision every ``d²`` of step 4 is
            recomputed in fp32. Defaults to ``'fp32'``.
        max_distance (float): Store only pairs with ``d_J < max_distance``.
            The default 1.0 stores every overlapping pair, or those below the
            pruning radius of the call (:meth:`BaseDistance.resolve_radius`:
            the :class:`PseudoLabeler` passes ``eps + 1e-3`` of DBSCAN,
            which only needs the pairs ``<= eps``), which gives identical
            labels with far less memory on data whose expanded sets overlap
            a lot (e.g. very large N). Defaults to 1.0.
        max_chunk_elems (int): Bound on the (i, j, k) triples expanded at a
            time (memory ~50 bytes each). Defaults to 2**22.
        max_pairs (int, optional): Pair budget: the most pairs (i, j) with
            ``d_J < max_distance`` the result may hold (both triangles and
            the diagonal counted; about ``BYTES_PER_PAIR`` bytes each up to
            the end of DBSCAN). Re-ID data keeps 20-200 per image with the
            eps pruning of :class:`PseudoLabeler`, i.e. at most a few
            million. Images or features that are nearly all alike (many
            copies of one image, a collapsed encoder) keep a pair for almost
            every pair of images, O(N²), and mostly one cluster. The budget
            is checked before any pair is stored, from the rows of a sample
            (see :meth:`check_pair_budget`), and again while the pairs are
            collected, so memory never goes beyond it; either raises
            :class:`PairBudgetError`. None: no budget. Defaults to 2**25
            (about 4.7 GB).

    Examples:
        >>> feats = torch.nn.functional.normalize(torch.randn(100, 16), dim=1)
        >>> dist = JaccardDistance(k1=10, k2=3)(feats)
        >>> dist.matrix.shape
        (100, 100)
    """

    def __init__(self,
                 k1: int = 30,
                 k2: int = 6,
                 knn_backend: str = 'auto',
                 knn_precision: str = 'fp32',
                 max_distance: float = 1.0,
                 max_chunk_elems: int = 1 << 22,
                 max_pairs: Optional[int] = 1 << 25) -> None:
        if not 1 <= k2 <= k1:
            raise ValueError(f'need 1 <= k2 <= k1, got k1={k1}, k2={k2}')
        if max_pairs is not None:
            check_int(type(self).__name__, 'max_pairs', max_pairs, low=1,
                      why='It bounds the stored pairs (None: no bound).')
        self.max_pairs = max_pairs
        self.k1 = k1
        self.k2 = k2
        self.knn_backend = knn_backend
        self.knn_precision = knn_precision
        self.max_distance = max_distance
        self.max_chunk_elems = max_chunk_elems

    def compute(self, features: torch.Tensor, context: LabelingContext,
                max_distance: float) -> DistanceMatrix:
        """Jaccard distance of all pairs of rows of ``features`` (N, D).

        Args:
            features (Tensor): ``(N, D)`` L2-normalised features.
            context (LabelingContext): Unused.
            max_distance (float): The radius of this call.

        Returns:
            DistanceMatrix: N×N float32 CSR, each row holding the pairs with
            distance < ``max_distance`` (explicit zeros kept, diagonal
            included), columns sorted; every missing pair is at 1.
        """
        feats = features.detach().float()
        k = min(self.k1, feats.shape[0])
        sqdist, index = knn_search(
            feats, k, backend=self.knn_backend, precision=self.knn_precision)
        return DistanceMatrix(
            self.from_knn(feats, sqdist, index, max_distance=max_distance),
            max_distance=max_distance)

    # ------------------------------------------------------------------
    def from_knn(self,
                 feats: torch.Tensor,
                 sqdist: Optional[torch.Tensor],
                 index: torch.Tensor,
                 max_distance: Optional[float] = None) -> sp.csr_matrix:
        """Jaccard distance from a precomputed kNN (self at rank 0).

        Args:
            feats (Tensor): Features (N, D).
            sqdist (Tensor, optional): Squared distances of ``index``; when
                given (fp32 kNN), they are reused for the pairs they cover.
            index (Tensor): kNN indices (N, >= k1), self at rank 0.
            max_distance (float, optional): Keep the pairs below it.
                Defaults to ``self.max_distance``.

        Returns:
            scipy.sparse.csr_matrix: The bare N×N matrix (missing pairs 1).
        """
        if max_distance is None:
            max_distance = self.max_distance
        n = feats.shape[0]
        k1 = min(self.k1, n)
        index_np = np.ascontiguousarray(
            index[:, :k1].cpu().numpy().astype(np.int64))
        v = self._encode(feats, sqdist, index_np)
        v = self._query_expand(v, index_np)
        # V is O(N * k1) entries; the pairs of step 6 can be O(N²): check
        # them against the budget before allocating any of them
        self.check_pair_budget(v, feats, index_np, max_distance)
        return self._jaccard(v, max_distance)

    def _row_distances(self, v: sp.csr_matrix, vt: sp.csr_matrix,
                       row: int) -> np.ndarray:
        """Step 6 for one row against all rows: the float32 ``d_J`` of the
        pairs ``(row, j)`` whose expanded sets overlap (other pairs are 1)."""
        cols = v.indices[v.indptr[row]:v.indptr[row + 1]]
        vals = v.data[v.indptr[row]:v.indptr[row + 1]]
        lens = (vt.indptr[cols + 1] - vt.indptr[cols]).astype(np.int64)
        src = _ragged_arange(vt.indptr[cols].astype(np.int64), lens)
        mins = np.minimum(np.repeat(vals, lens), vt.data[src])
        m = np.bincount(vt.indices[src], weights=mins,
                        minlength=v.shape[0])
        m32 = m[m > 0].astype(np.float32)
        dist = np.float32(1) - m32 / (np.float32(2) - m32)
        return np.maximum(dist, 0)

    def check_pair_budget(self,
                          v: sp.csr_matrix,
                          feats: Optional[torch.Tensor] = None,
                          index: Optional[np.ndarray] = None,
                          max_distance: Optional[float] = None) -> None:
        """Estimate the stored pairs of :meth:`_jaccard` before computing
        them, and raise if they exceed ``max_pairs``.

        The distances of ``PAIR_SAMPLE_ROWS`` rows drawn with a fixed seed
        (every row of a smaller set, then the count is exact) to all rows
        are computed exactly, in O(n) memory per row; ``N`` times their mean
        count of pairs below ``max_distance`` estimates the total. Only the
        check depends on the draw, never the distance. The exact count is
        checked again while the pairs are collected (:meth:`_jaccard_upper`).

        Args:
            v (scipy.sparse.csr_matrix): The query-expanded encoding V.
            feats (Tensor, optional): The features, to count exact
                duplicates for the message.
            index (np.ndarray, optional): The kNN lists (self at rank 0),
                likewise.
            max_distance (float, optional): The radius of the pairs counted.
                Defaults to ``self.max_distance``.

        Raises:
            PairBudgetError: The estimate exceeds ``max_pairs``.
        """
        if self.max_pairs is None:
            return
        if max_distance is None:
            max_distance = self.max_distance
        n = v.shape[0]
        if n * n <= self.max_pairs:
            return  # even every pair fits
        rows = np.arange(n) if n <= PAIR_SAMPLE_ROWS else np.sort(
            np.random.default_rng(0).choice(
                n, PAIR_SAMPLE_ROWS, replace=False))
        vt = v.T.tocsr()
        counts = [
            int((self._row_distances(v, vt, r) < max_distance).sum())
            for r in rows
        ]
        estimate = n * float(np.mean(counts))
        if estimate > self.max_pairs:
            raise PairBudgetError(
                self._budget_message(n, estimate, 'would keep about',
                                     feats, index, max_distance))

    def _budget_message(self, n: int, pairs: float, verb: str,
                        feats: Optional[torch.Tensor],
                        index: Optional[np.ndarray],
                        max_distance: float) -> str:
        """The :class:`PairBudgetError` text: the problem and what to do."""
        dup = ''
        if feats is not None and index is not None and index.shape[1] > 1:
            # the nearest other image of each row at distance 0: a copy
            x = feats.detach().float().cpu()
            gap = (x - x[torch.from_numpy(index[:, 1])]).abs().amax(1)
            dup = (f' {int((gap == 0).sum())} of the {n} images have an '
                   'exact copy (identical feature).')
        return (
            f'{type(self).__name__}: the {n} images {verb} {pairs:,.0f} '
            f'pairs with distance < max_distance={max_distance:g} '
            f'({pairs / n:,.0f} per image, {pairs / n / n:.0%} of all '
            'image pairs), more than the pair budget max_pairs='
            f'{self.max_pairs:,} (about '
            f'{self.max_pairs * BYTES_PER_PAIR / 1e9:.1f} GB). Re-ID data '
            'keeps 20-200 per image; this many means the images or their '
            'features are nearly all alike (many copies of one image, or an '
            'encoder that maps every image to the same feature), and most of '
            f'them would fall into one cluster.{dup} Check the training '
            'images for duplicates and the features; if the data really '
            'is this dense, raise the budget (e.g. --cfg-options '
            'default_hooks.pseudo_label.labeler.distance.max_pairs=N, '
            'max_pairs=None for none) or lower max_distance.')

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
        half_size = np.diff(rh.indptr)
        # |R(c, k1/2) ∩ R(i, k1)| for every c in R(i, k1)  (R is symmetric)
        overlap = (r1 @ rh).multiply(r1).tocoo()
        keep = overlap.data > 2 / 3 * half_size[overlap.col]
        sel = sp.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.int32),
             (overlap.row[keep], overlap.col[keep])),
            shape=(n, n))
        expanded = (r1 + sel @ rh).tocsr()
        expanded.sort_indices()
        return expanded

    @staticmethod
    def _softmax_encode(expanded: sp.csr_matrix,
                        d2: np.ndarray) -> sp.csr_matrix:
        """Step 4: ``V[i, j] = softmax_{j in E(i)}(-d2_ij)`` on the pattern of
        ``expanded`` (``d2`` float64, one value per stored entry)."""
        n = expanded.shape[0]
        rows = _row_ids(expanded.indptr)
        cols = expanded.indices.astype(np.int64)
        d2 = np.array(d2, dtype=np.float64)
        # row-wise softmax of -d2 (shifted by the row minimum for stability)
        starts = expanded.indptr[:-1]
        d2 -= np.minimum.reduceat(d2, starts)[rows]
        w = np.exp(-d2)
        w /= np.add.reduceat(w, starts)[rows]
        return sp.csr_matrix((w, cols, expanded.indptr), shape=(n, n))

    def _pair_sqdist(self, feats: torch.Tensor, sqdist: Optional[torch.Tensor],
                     index: np.ndarray, rows: np.ndarray,
                     cols: np.ndarray) -> np.ndarray:
        """``2 - 2 x_i·x_j`` (float64) for the given pairs.

        Pairs found in the fp32 kNN lists (of i or of j; ~90% of them) reuse
        the kNN distance (as ``ip = (|x_i|² + |x_j|² - sqdist)/2``); the
        others are gathered and multiplied in chunks.
        """
        n, k1 = index.shape
        x = feats.detach().float()
        norms = (x * x).sum(1).cpu().numpy().astype(np.float64)
        ip = np.empty(len(rows), dtype=np.float64)
        todo = np.ones(len(rows), dtype=bool)
        if sqdist is not None and self.knn_precision == 'fp32':
            knn_keys = (np.arange(n, dtype=np.int64)[:, None] * n +
                        index).ravel()
            order = np.argsort(knn_keys, kind='stable')
            knn_keys = knn_keys[order]
            knn_d = sqdist[:, :k1].cpu().numpy().astype(
                np.float64).ravel()[order]
            # look (i, j) up in i's list, then (j, i) in j's list
            for keys in (rows * n + cols, cols * n + rows):
                sub = np.flatnonzero(todo)
                pos = np.minimum(np.searchsorted(knn_keys, keys[sub]),
                                 len(knn_keys) - 1)
                hit = knn_keys[pos] == keys[sub]
                found = sub[hit]
                ip[found] = (norms[rows[found]] + norms[cols[found]] -
                             knn_d[pos[hit]]) / 2
                todo[found] = False
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
            # both triangles of the result: 2 per pair j > i, 1 on the
            # diagonal. Stop as soon as the budget is exceeded, so that
            # memory never holds much more than it.
            stored += 2 * len(rows) - int((rows == cols).sum())
            if self.max_pairs is not None and stored > self.max_pairs:
                del parts
                raise PairBudgetError(
                    self._budget_message(n, stored, 'keep at least', None,
                                         None, max_distance))
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
        # v.T in CSR: row k of vt lists the rows i having column k
        vt = v.T.tocsr()
        # every row of V is non-empty (i ∈ E(i)), so reduceat is safe
        cum = np.concatenate(
            [[0], np.cumsum(np.add.reduceat(entry_len, v.indptr[:-1]))])
        max_rows = max(1, (1 << 24) // n)
        scratch = np.empty(min(n, max_rows) * n, dtype=np.int64)
        r0 = 0
        while r0 < row_stop:
            r1 = int(np.searchsorted(cum, cum[r0] + self.max_chunk_elems,
                                     side='right')) - 1
            r1 = min(max(r1, r0 + 1), r0 + max_rows, row_stop)
            # output pattern of these rows: pairs j >= i sharing a column
            pattern = (v[r0:r1] @ vt).tocsr()
            pattern.sort_indices()
            p_rows = _row_ids(pattern.indptr) + r0
            upper = pattern.indices >= p_rows
            u_rows, u_cols = p_rows[upper], pattern.indices[upper]
            del pattern, p_rows, upper
            e0, e1 = v.indptr[r0], v.indptr[r1]
            lens = entry_len[e0:e1]
            src = _ragged_arange(pos[e0:e1], lens)
            rep = np.repeat(np.arange(e1 - e0), lens)
            mins = np.minimum(v.data[e0:e1][rep], csc_data[src])
            keys = (v_rows[e0:e1][rep] - r0) * n + csc_rows[src]
            del src, rep
            p_keys = (u_rows - r0) * n + u_cols
            scratch[p_keys] = np.arange(len(p_keys))
            m = np.bincount(scratch[keys], weights=mins,
                            minlength=len(p_keys))
            del keys, mins, p_keys
            # m is summed in float64; the distance itself is evaluated in
            # float32 like the official code (identical rows give exactly 0)
            m32 = m.astype(np.float32)
            dist = np.float32(1) - m32 / (np.float32(2) - m32)
            np.maximum(dist, 0, out=dist)
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
