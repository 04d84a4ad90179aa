# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The k-reciprocal Jaccard distance exactly as "Theory" computes it."""
import numpy as np
from scipy.spatial.distance import cdist


def _reciprocal_mask(rank: np.ndarray, length: int) -> np.ndarray:
    """``(N, length)`` mask: the ``j``-th of the first ``length`` entries of
    row ``i`` has ``i`` among its own first ``length`` entries."""
    n = rank.shape[0]
    head = rank[:, :length]
    mask = np.zeros(head.shape, dtype=bool)
    for s in range(0, n, 1024):  # (rows, length, length) at a time
        block = head[s:s + 1024]
        mask[s:s + 1024] = (head[block] == np.arange(
            s, s + len(block))[:, None, None]).any(2)
    return mask


def theory_jaccard_fp16(feats: np.ndarray, k1: int = 20,
                        k2: int = 6) -> np.ndarray:
    r"""Dense float16 k-reciprocal Jaccard distance of "Theory".

    Song et al., "Unsupervised domain adaptive re-identification: Theory and
    practice", Pattern Recognition 2020 (code lsongx/DomainAdaptiveReID,
    ``reid/rerank.py``, after Zhong et al., CVPR 2017). It differs from
    :class:`JaccardDistance` (the Cluster Contrast / ICE variant) in its
    arithmetic, which is reproduced operation by operation so that the
    result is bit-identical:

    - the features are the RAW ones (``pool5``), rounded to float16; the
      squared Euclidean distance is rounded to float16 and every COLUMN is
      divided by its maximum, then the matrix is transposed;
    - the neighbour lists hold ``k1 + 1`` entries (the point itself first)
      and ``round(k1 / 2) + 1`` for the expansion; the weights
      :math:`e^{-d}` of the normalised squared distance;
    - V, its query expansion over the ``k2`` nearest and the sums
      :math:`\sum_k \min(V_{ik}, V_{jk})` are float16, the latter
      accumulated in increasing ``k`` as Theory's loop does;
    - :math:`d_J = 1 - m / (2 - m)` in float16, negatives set to 0.

    It is dense (N x N float16 matrices: 0.33 GB each at N = 12,936), as
    Theory's code is. Hand-written: no library computes this distance.

    Args:
        feats (np.ndarray): ``(N, D)`` raw features.
        k1 (int): Neighbourhood size (Theory: 20).
        k2 (int): Query-expansion size (Theory: 6).

    Returns:
        np.ndarray: ``(N, N)`` float16 Jaccard distance.
    """
    f = np.asarray(feats).astype(np.float16)
    n = f.shape[0]
    dist = np.power(cdist(f, f).astype(np.float16), 2).astype(np.float16)
    dist = np.transpose(dist / np.max(dist, axis=0))
    rank = np.argsort(dist).astype(np.int32)
    half = int(np.around(k1 / 2)) + 1
    recip = _reciprocal_mask(rank, k1 + 1)
    recip_half = _reciprocal_mask(rank, half)
    v = np.zeros_like(dist, dtype=np.float16)
    for i in range(n):
        r = rank[i, :k1 + 1][recip[i]]
        expanded = r
        for c in r:
            rc = rank[c, :half][recip_half[c]]
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                expanded = np.append(expanded, rc)
        expanded = np.unique(expanded)
        weight = np.exp(-dist[i, expanded])
        v[i, expanded] = weight / np.sum(weight)
    if k2 != 1:
        v_qe = np.zeros_like(v, dtype=np.float16)
        for i in range(n):
            v_qe[i, :] = np.mean(v[rank[i, :k2], :], axis=0)
        v = v_qe
    del rank
    # m_ij = sum_k min(V_ik, V_jk) in float16, k increasing: column k adds
    # to every pair of rows that share it
    m = np.zeros((n, n), dtype=np.float16)
    for k in range(n):
        rows = np.flatnonzero(v[:, k] != 0)
        if len(rows):
            col = v[rows, k]
            m[np.ix_(rows, rows)] = m[np.ix_(rows, rows)] + np.minimum(
                col[:, None], col[None, :])
    jaccard = 1 - m / (2 - m)
    jaccard[jaccard < 0] = 0.0
    return jaccard
