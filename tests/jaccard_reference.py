# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Test oracle: a straightforward dense version of the official Jaccard.

Written from the formulas of ``docs/algorithms/common.md#jaccard-distance``
with the official code's loop structure and dense N×N float32 arrays (O(N²)
memory). Ground truth for ``tests/test_clustering/test_jaccard.py`` and the
baseline of ``benchmarks/pseudo_label_bench.py --reference`` (which puts
``tests/`` on ``sys.path``); not part of the package, never used in training.
"""
import numpy as np


def _k_reciprocal(initial_rank: np.ndarray, i: int, k: int) -> np.ndarray:
    forward = initial_rank[i, :k + 1]
    backward = initial_rank[forward, :k + 1]
    return forward[np.where(backward == i)[0]]


def dense_jaccard_reference(feats: np.ndarray,
                            initial_rank: np.ndarray,
                            k1: int = 30,
                            k2: int = 6) -> np.ndarray:
    """Dense Jaccard distance exactly as the official pipeline computes it.

    Args:
        feats (np.ndarray): L2-normalised float32 features (N, D).
        initial_rank (np.ndarray): kNN indices (N, k1), self at rank 0.
        k1 (int): Neighbourhood size. Defaults to 30.
        k2 (int): Query-expansion size. Defaults to 6.

    Returns:
        np.ndarray: Dense float32 (N, N) distance, clipped at 0.
    """
    feats = np.asarray(feats, dtype=np.float32)
    initial_rank = np.asarray(initial_rank)[:, :k1]
    n = feats.shape[0]
    nn_k1 = [_k_reciprocal(initial_rank, i, k1) for i in range(n)]
    nn_half = [_k_reciprocal(initial_rank, i, int(np.around(k1 / 2)))
               for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        rec = nn_k1[i]
        exp_index = rec
        for c in rec:
            cand = nn_half[c]
            if len(np.intersect1d(cand, rec)) > 2 / 3 * len(cand):
                exp_index = np.append(exp_index, cand)
        exp_index = np.unique(exp_index)
        dist = 2 - 2 * feats[exp_index] @ feats[i]
        w = np.exp(-(dist - dist.min()))
        v[i, exp_index] = w / w.sum()
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = np.mean(v[initial_rank[i, :k2]], axis=0)
        v = v_qe
    inv_index = [np.where(v[:, i] != 0)[0] for i in range(n)]
    jaccard = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        temp_min = np.zeros(n, dtype=np.float32)
        non_zero = np.where(v[i] != 0)[0]
        for k in non_zero:
            rows = inv_index[k]
            temp_min[rows] += np.minimum(v[i, k], v[rows, k])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    jaccard[jaccard < 0] = 0
    return jaccard
