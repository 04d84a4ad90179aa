# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Dense k-reciprocal re-ranking (Zhong et al., CVPR 2017), test reference.

A direct, loop-based transcription of the published algorithm (float32
N×N arrays, as the official code keeps them), used to check the sparse
:func:`mmreid_usl.evaluation.functional.rerank.k_reciprocal_rerank`. Not for
large inputs: O(N²) memory and Python loops.
"""
import numpy as np


def dense_rerank(q, g, k1=20, k2=6, lambda_value=0.3):
    """Re-ranked ``Q × G`` distance of query / gallery features (numpy)."""
    x = np.concatenate([q, g]).astype(np.float32)
    n, nq = x.shape[0], q.shape[0]
    sq = (x * x).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * x @ x.T
    # column-max normalisation then transpose, as the official code
    dist = (dist / dist.max(axis=0)).T.astype(np.float32)
    rank = np.argsort(dist, axis=1, kind='stable')

    def reciprocal(i, k):
        forward = rank[i, :k + 1]
        backward = rank[forward, :k + 1]
        return forward[(backward == i).any(axis=1)]

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = list(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(np.intersect1d(rc, r)) > 2 / 3 * len(rc):
                expanded.extend(rc)
        expanded = np.unique(expanded)
        w = np.exp(-dist[i, expanded])
        v[i, expanded] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        m = np.minimum(v[i][None, :], v).sum(axis=1)
        jaccard[i] = 1 - m / (2 - m)
    final = (1 - lambda_value) * jaccard + lambda_value * dist[:nq]
    return final[:, nq:]
