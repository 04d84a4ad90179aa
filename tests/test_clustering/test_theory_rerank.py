# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Theory's float16 Jaccard distance against a pair-by-pair restatement of
its definition (and the mixed distance built on it)."""
import numpy as np
import pytest
import torch

from mmreid_usl.clustering import SourceAwareJaccardDistance
from mmreid_usl.clustering.theory_rerank import theory_jaccard_fp16


def _kreciprocal(rank, i, length):
    """R(i): the first `length` entries of i's list that list i back."""
    return [int(j) for j in rank[i, :length] if i in set(rank[j, :length])]


def _oracle(x, k1, k2):
    f = x.astype(np.float16).astype(np.float64)
    n = len(f)
    d2 = ((f[:, None] - f[None]) ** 2).sum(-1) ** 0.5  # float64 cdist
    d2 = np.power(d2.astype(np.float16), 2).astype(np.float16)
    d = (d2 / d2.max(axis=0)).T
    rank = np.argsort(d)
    half = int(np.around(k1 / 2)) + 1
    v = np.zeros((n, n), np.float16)
    for i in range(n):
        r = _kreciprocal(rank, i, k1 + 1)
        e = set(r)
        for c in r:
            rc = _kreciprocal(rank, c, half)
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                e |= set(rc)
        e = np.array(sorted(e))
        w = np.exp(-d[i, e])
        v[i, e] = w / np.sum(w)
    v = np.stack([np.mean(v[rank[i, :k2]], axis=0) for i in range(n)])
    out = np.zeros((n, n), np.float16)
    for i in range(n):
        for j in range(n):
            m = np.float16(0)
            for k in range(n):  # increasing k, float16 sums
                if v[i, k] != 0 and v[j, k] != 0:
                    m = np.float16(m + min(v[i, k], v[j, k]))
            out[i, j] = max(np.float16(1) - m / (np.float16(2) - m), 0)
    return out


def test_theory_jaccard_is_bit_identical_to_its_definition():
    g = np.random.default_rng(0)
    centres = g.normal(size=(5, 8)) * 6
    x = np.repeat(centres, 6, axis=0) + g.normal(size=(30, 8))
    got = theory_jaccard_fp16(x, k1=6, k2=3)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, _oracle(x, 6, 3))
    # a perturbed input changes it (the comparison can fail)
    assert not np.array_equal(theory_jaccard_fp16(x * 1.01 + 0.3, 6, 3), got)


def test_mixed_distance_in_theory_mode():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 6, generator=g) * 3
    src = torch.randn(10, 6, generator=g) * 3
    dist = SourceAwareJaccardDistance(
        k1=5, k2=2, lambda_source=0.1, source_feature='raw_fp16',
        jaccard='theory_fp16')
    assert dist.needs_raw_features
    out = dist(torch.nn.functional.normalize(x, dim=1),
               raw_features=x, raw_reference_features=src).matrix
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    s16 = dist.last_source_term.astype(np.float16)
    dj = theory_jaccard_fp16(x.numpy(), 5, 2)
    expect = dj * 0.9 + (s16[:, None] + s16[None, :]).astype(np.float64) * 0.1
    np.testing.assert_array_equal(out, expect)
    # Theory's diagonal: 2 * lambda * s_i (its Jaccard diagonal is ~0)
    assert np.allclose(np.diag(out), 0.2 * s16, atol=2e-3)
    with pytest.raises(ValueError, match='raw_fp16'):
        SourceAwareJaccardDistance(jaccard='theory_fp16')
