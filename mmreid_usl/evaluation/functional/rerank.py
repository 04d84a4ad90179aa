# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Test-time k-reciprocal re-ranking, computed sparsely."""
import time
from typing import Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from mmengine.logging import print_log

from mmreid_usl.clustering.jaccard import JaccardDistance, _row_ids
from mmreid_usl.clustering.knn import _put_self_first


def _merge_topk(best_d: torch.Tensor, best_i: torch.Tensor,
                new_d: torch.Tensor, new_i: torch.Tensor) -> None:
    """Keep, in place, the ``k`` smallest of the running lists and the new
    candidates (rows aligned)."""
    k = best_d.shape[1]
    cat_d = torch.cat([best_d, new_d], 1)
    cat_i = torch.cat([best_i, new_i], 1)
    val, pos = torch.topk(cat_d, k, dim=1, largest=False, sorted=True)
    best_d.copy_(val)
    best_i.copy_(cat_i.gather(1, pos))


def _knn_and_row_max(x: torch.Tensor, k: int, chunk_size: Optional[int]
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """kNN lists (``k`` entries, self first) and the largest distance of
    every row, in one chunked pass over the upper triangle of the N×N
    squared distances.

    Hand-written: :func:`mmreid_usl.clustering.knn_search` (faiss or torch)
    returns only the nearest neighbours, and the re-ranking also needs each
    row's maximum. The distance is symmetric, so each block of rows
    ``[s, e)`` is multiplied with the columns ``[s, N)`` only: the block
    serves the rows ``[s, e)`` directly and, transposed, the rows ``[e, N)``
    (their columns ``[s, e)``); running top-k lists are merged. This halves
    the matrix products of a full pass.
    """
    n = x.shape[0]
    norms = (x * x).sum(1)
    if chunk_size is None:  # blocks of about 256 MiB of fp32 distances
        chunk_size = max(1, min(n, (1 << 26) // max(n, 1)))
    best_d = torch.full((n, k), float('inf'), dtype=torch.float32)
    best_i = torch.full((n, k), -1, dtype=torch.long)
    row_max = torch.full((n, ), float('-inf'), dtype=torch.float32)
    with torch.no_grad():
        for s in range(0, n, chunk_size):
            e = min(s + chunk_size, n)
            d = torch.mm(x[s:e], x[s:].t())
            d.mul_(-2).add_(norms[None, s:]).add_(norms[s:e, None])
            # rows [s, e): columns [s, N)
            kk = min(k, n - s)
            val, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
            _merge_topk(best_d[s:e], best_i[s:e], val, idx + s)
            torch.maximum(row_max[s:e], d.max(1).values, out=row_max[s:e])
            if e < n:
                # rows [e, N): columns [s, e), from the transposed block
                rest = d[:, e - s:]
                kk = min(k, e - s)
                val, idx = torch.topk(rest, kk, dim=0, largest=False,
                                      sorted=True)
                _merge_topk(best_d[e:], best_i[e:], val.t(), idx.t() + s)
                torch.maximum(row_max[e:], rest.max(0).values,
                              out=row_max[e:])
            del d
    sqdist, index = _put_self_first(best_d, best_i)
    return sqdist, index, row_max


class ReRankedDistance:
    r"""The re-ranked query-gallery distance, served in dense query chunks.

    Holds the per-query normalisation, the features and the sparse Jaccard
    part (the query-gallery pairs whose expanded sets overlap); the final
    distance

    .. math::
        d^*(q, g) = (1 - \lambda)\, d_J(q, g) + \lambda\, \tilde d(q, g),
        \qquad \tilde d(q, g) = d(q, g) / \max_{j} d(q, j)

    (:math:`d_J = 1` for the pairs not stored) is computed for ``s:e``
    queries at a time by :meth:`__call__`, so the dense ``Q × G`` matrix
    never exists unless :meth:`dense` is called.

    Args:
        q_feats (Tensor): Query features (Q, D), float32 on CPU.
        g_feats (Tensor): Gallery features (G, D), float32 on CPU.
        q_row_max (Tensor): :math:`\max_j d(q, j)` over queries and gallery
            (Q,).
        jaccard (scipy.sparse.csr_matrix): ``Q × G`` float32, the stored
            :math:`d_J < 1`.
        lambda_value (float): :math:`\lambda`.
    """

    def __init__(self, q_feats: torch.Tensor, g_feats: torch.Tensor,
                 q_row_max: torch.Tensor, jaccard: sp.csr_matrix,
                 lambda_value: float) -> None:
        self.q_feats = q_feats
        self.g_feats = g_feats
        self.q_norms = (q_feats * q_feats).sum(1)
        self.g_norms = (g_feats * g_feats).sum(1)
        self.q_row_max = q_row_max
        self.jaccard = jaccard
        self.lambda_value = float(lambda_value)

    @property
    def shape(self) -> Tuple[int, int]:
        """tuple[int, int]: ``(Q, G)``."""
        return self.jaccard.shape

    def __call__(self, start: int, end: int) -> torch.Tensor:
        """Dense re-ranked distances of queries ``start:end`` (float32,
        ``(end - start, G)``, a new tensor)."""
        lam = self.lambda_value
        with torch.no_grad():
            d = torch.mm(self.q_feats[start:end], self.g_feats.t())
            d.mul_(-2).add_(self.g_norms[None]).add_(
                self.q_norms[start:end, None])
            d.div_(self.q_row_max[start:end, None]).mul_(lam).add_(1 - lam)
        block = self.jaccard[start:end].tocoo()
        if block.nnz:
            rows = torch.from_numpy(block.row.astype(np.int64))
            cols = torch.from_numpy(block.col.astype(np.int64))
            vals = torch.from_numpy(block.data.astype(np.float32))
            d[rows, cols] += (1 - lam) * (vals - 1)
        return d

    def dense(self) -> torch.Tensor:
        """The whole ``Q × G`` matrix (small inputs only)."""
        return self(0, self.shape[0])


def k_reciprocal_rerank(q_feats: torch.Tensor,
                        g_feats: torch.Tensor,
                        k1: int = 20,
                        k2: int = 6,
                        lambda_value: float = 0.3,
                        chunk_size: Optional[int] = None,
                        max_chunk_elems: int = 1 << 22) -> ReRankedDistance:
    r"""k-reciprocal re-ranking of a query-gallery retrieval.

    Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
    Encoding", CVPR 2017 (https://arxiv.org/abs/1701.08398; official code
    https://github.com/zhunzhong07/person-re-ranking). Queries and gallery
    form one set of :math:`N = Q + G` points with the squared Euclidean
    distance :math:`d(i, j) = \lVert x_i - x_j\rVert^2` (the distance of
    :class:`ReIDMetric`; the official code squares the Euclidean distance
    it is given), normalised per row as the official code does:
    :math:`\tilde d(i, j) = d(i, j) / \max_{j'} d(i, j')`.

    1. kNN lists :math:`N(i, k_1 + 1)` (the point itself first);
       :math:`R(i, k) = \{j \in N(i, k+1) : i \in N(j, k+1)\}`.
    2. :math:`R^*(i) = R(i, k_1) \cup R(c, \mathrm{round}(k_1/2))` for the
       :math:`c \in R(i, k_1)` with
       :math:`|R(c, k_1/2) \cap R(i, k_1)| > \tfrac23 |R(c, k_1/2)|`.
    3. :math:`V_{ij} = e^{-\tilde d(i, j)} / \sum_{j' \in R^*(i)}
       e^{-\tilde d(i, j')}` for :math:`j \in R^*(i)`, else 0.
    4. Local query expansion: :math:`V_i \leftarrow \frac{1}{k_2}
       \sum_{j \in N(i, k_2)} V_j`.
    5. :math:`d_J(i, j) = 1 - \frac{\sum_k \min(V_{ik}, V_{jk})}
       {\sum_k \max(V_{ik}, V_{jk})} = 1 - \frac{m}{2 - m}`.
    6. :math:`d^*(q, g) = (1 - \lambda)\, d_J(q, g) + \lambda\,
       \tilde d(q, g)`.

    The paper's query-gallery setting is :math:`k_1 = 20, k_2 = 6,
    \lambda = 0.3`. Steps 2-5 reuse the sparse machinery of
    :class:`~mmreid_usl.clustering.JaccardDistance` (expansion, encoding,
    query expansion and the (+, min) product, the latter only for the query
    rows); step 1 is one chunked pass over the N×N distances that keeps the
    kNN lists and the row maxima, so memory stays O(N·k) plus the sparse V
    and the stored query-gallery Jaccard pairs. Equal to the dense original
    formulation to float32 rounding.

    Args:
        q_feats (Tensor): Query features (Q, D).
        g_feats (Tensor): Gallery features (G, D).
        k1 (int): :math:`k_1`. Defaults to 20.
        k2 (int): :math:`k_2` (``1 <= k2 <= k1``). Defaults to 6.
        lambda_value (float): :math:`\lambda \in [0, 1]`. Defaults to 0.3.
        chunk_size (int, optional): Rows per chunk of the kNN pass.
            Defaults to about ``2**25 / N``.
        max_chunk_elems (int): See :class:`JaccardDistance`.

    Returns:
        ReRankedDistance: Serves dense chunks of :math:`d^*`.
    """
    if not 1 <= k2 <= k1:
        raise ValueError(f'need 1 <= k2 <= k1, got k1={k1}, k2={k2}')
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f'lambda_value must be in [0, 1], got {lambda_value}')
    if q_feats.dim() != 2 or g_feats.dim() != 2 or \
            q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError('q_feats and g_feats must be (Q, D) and (G, D), got '
                         f'{tuple(q_feats.shape)} and {tuple(g_feats.shape)}')
    qf = q_feats.detach().float().cpu().contiguous()
    gf = g_feats.detach().float().cpu().contiguous()
    nq = qf.shape[0]
    x = torch.cat([qf, gf])
    n = x.shape[0]
    k = min(k1 + 1, n)
    t0 = time.perf_counter()
    sqdist, index, row_max = _knn_and_row_max(x, k, chunk_size)
    t1 = time.perf_counter()
    if bool((row_max <= 0).any()):
        raise ValueError('re-ranking needs distinct features: a point has '
                         'distance 0 to every other point')
    index_np = np.ascontiguousarray(index.numpy())
    jd = JaccardDistance(k1=k1, k2=k2, max_chunk_elems=max_chunk_elems)
    # R(i, k1) from the k1 + 1 entries of each list, R(i, k1/2) from
    # round(k1/2) + 1 (JaccardDistance._expand reads the list width)
    expanded = jd._expand(index_np)
    rows = _row_ids(expanded.indptr)
    cols = expanded.indices.astype(np.int64)
    norms = (x * x).sum(1).numpy().astype(np.float64)
    # _pair_sqdist gives 2 - 2 x_i.x_j; add the norms for d(i, j)
    d = jd._pair_sqdist(x, sqdist, index_np, rows, cols)
    d += norms[rows] + norms[cols] - 2.0
    d /= row_max.numpy().astype(np.float64)[rows]
    v = jd._softmax_encode(expanded, d)
    del expanded, rows, cols, d
    v = jd._query_expand(v, index_np)
    v_nnz = v.nnz
    # query rows come first, so every query-gallery pair (i < Q <= j) is in
    # the upper triangle of the first Q rows; the chunks come row-major with
    # sorted columns, so the CSR arrays are appended directly (int32 columns)
    counts = np.zeros(nq, dtype=np.int64)
    indices, data = [], []
    for rows_c, cols_c, vals_c in jd._jaccard_upper_chunks(v, row_stop=nq):
        keep = cols_c >= nq
        counts += np.bincount(rows_c[keep], minlength=nq)
        indices.append((cols_c[keep] - nq).astype(np.int32))
        data.append(vals_c[keep])
    del v
    indptr = np.concatenate([[0], np.cumsum(counts)])
    jaccard = sp.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, np.float32),
         np.concatenate(indices) if indices else np.zeros(0, np.int32),
         indptr),
        shape=(nq, n - nq))
    t2 = time.perf_counter()
    print_log(
        f'k-reciprocal re-ranking (k1={k1}, k2={k2}, lambda={lambda_value}): '
        f'{nq} queries x {n - nq} gallery, V nnz {v_nnz}, '
        f'{jaccard.nnz} query-gallery pairs with d_J < 1; kNN pass '
        f'{t1 - t0:.1f} s, encoding + Jaccard {t2 - t1:.1f} s',
        logger='current')
    return ReRankedDistance(qf, gf, row_max[:nq].clone(), jaccard,
                            lambda_value)
