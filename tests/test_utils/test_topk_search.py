# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The package's one top-k search helper (mmreid_usl.utils.search)."""
import numpy as np
import pytest
import torch

from mmreid_usl.utils.search import (build_faiss_index, faiss_available,
                                     rows_per_chunk, topk_rows, topk_search)


def _feats(n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g),
                                         dim=1)


def test_sqeuclidean_and_inner_product_are_the_brute_force_order():
    q, b = _feats(23, seed=1), _feats(57, seed=2)
    d2 = ((q[:, None] - b[None])**2).sum(-1)
    val, idx = topk_search(q, b, 6, metric='sqeuclidean', backend='torch')
    assert torch.equal(idx, torch.argsort(d2, dim=1, stable=True)[:, :6])
    torch.testing.assert_close(val, d2.gather(1, idx), atol=1e-5, rtol=0)
    assert (val[:, 1:] >= val[:, :-1]).all()  # nearest first
    sim = q @ b.t()
    val, idx = topk_search(q, b, 6, metric='inner_product', backend='torch')
    assert torch.equal(
        idx, torch.argsort(sim, dim=1, descending=True, stable=True)[:, :6])
    torch.testing.assert_close(val, sim.gather(1, idx), atol=1e-6, rtol=0)


@pytest.mark.parametrize('metric', ['sqeuclidean', 'inner_product'])
def test_backends_and_chunks_agree(metric):
    q, b = _feats(31, seed=3), _feats(80, seed=4)
    ref_v, ref_i = topk_search(q, b, 9, metric=metric, backend='torch')
    for chunk in (1, 7, 1000):
        # the matrix product may round differently for other chunk shapes
        v, i = topk_search(q, b, 9, metric=metric, backend='torch',
                           chunk_size=chunk)
        assert torch.equal(i, ref_i)
        torch.testing.assert_close(v, ref_v, atol=1e-6, rtol=0)
    if not faiss_available():
        pytest.skip('faiss is not installed')
    v, i = topk_search(q, b, 9, metric=metric, backend='faiss')
    assert torch.equal(i, ref_i)
    torch.testing.assert_close(v, ref_v, atol=1e-5, rtol=0)
    # a prebuilt index answers the same
    index = build_faiss_index(b, metric)
    v2, i2 = topk_search(q, b, 9, metric=metric, backend='faiss',
                         faiss_index=index)
    assert torch.equal(i2, i) and torch.equal(v2, v)


def test_topk_larger_than_the_base_gives_all_of_it_sorted():
    q, b = _feats(4, seed=5), _feats(6, seed=6)
    for backend in ('torch', 'auto'):
        val, idx = topk_search(q, b, 100, backend=backend)
        assert val.shape == idx.shape == (4, 6)
        assert (torch.sort(idx, dim=1).values == torch.arange(6)).all()
        assert (val[:, 1:] >= val[:, :-1]).all()
    val, idx = topk_rows(lambda s, e: torch.rand(e - s, 5), 3, 5)
    assert idx.shape == (3, 5)


def test_ties_come_in_base_order_with_stable():
    # base rows 0, 2, 4, ... equal the query (distance 0), the others are
    # equally far: every entry ties with others
    b = torch.zeros(50, 4)
    b[::2, 0] = 1
    b[1::2, 1] = 1
    q = torch.tensor([[1., 0., 0., 0.]])
    val, idx = topk_search(q, b, 30, stable=True)
    expected = list(range(0, 50, 2)) + [1, 3, 5, 7, 9]
    assert idx[0].tolist() == expected
    assert val[0, :25].abs().max() == 0 and (val[0, 25:] == 2).all()
    _, idx = topk_search(q, b, 30, metric='inner_product', stable=True)
    assert idx[0].tolist() == expected
    # without stable, ties may come in any order, but the set is the same
    _, idx = topk_search(q, b, 25, backend='torch')
    assert sorted(idx[0].tolist()) == list(range(0, 50, 2))
    # topk_rows on a given matrix: ties in column order
    rows = torch.tensor([[3., 1., 1., 2., 1.], [0., 0., 0., 0., 0.]])
    _, idx = topk_rows(lambda s, e: rows[s:e].clone(), 2, 4, stable=True)
    assert idx.tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]
    _, idx = topk_rows(lambda s, e: rows[s:e].clone(),
                       2,
                       2,
                       largest=True,
                       stable=True,
                       chunk_size=1)
    assert idx.tolist() == [[0, 3], [0, 1]]


def test_excluded_pairs_are_left_out():
    q, b = _feats(5, seed=7), _feats(8, seed=8)
    banned = torch.zeros(5, 8, dtype=torch.bool)
    banned[:, :5] = True  # only 3 candidates per query
    val, idx = topk_search(q, b, 6, exclude=lambda s, e: banned[s:e])
    assert idx.shape == (5, 6)
    assert (idx[:, :3] >= 5).all() and (idx[:, 3:] == -1).all()
    assert torch.isinf(val[:, 3:]).all() and torch.isfinite(val[:, :3]).all()
    _, idx = topk_search(q, b, 6, metric='inner_product',
                         exclude=lambda s, e: banned[s:e], chunk_size=2)
    assert (idx[:, 3:] == -1).all()


def test_reduced_precision_and_empty_queries():
    q, b = _feats(12, d=32, seed=9), _feats(40, d=32, seed=10)
    _, ref = topk_search(q, b, 5, backend='torch')
    val, idx = topk_search(q, b, 5, precision='bf16')
    assert val.dtype == torch.float32
    assert (idx[:, 0] == ref[:, 0]).float().mean() > 0.8
    val, idx = topk_search(q[:0], b, 5)
    assert val.shape == idx.shape == (0, 5)


def test_errors():
    q, b = _feats(3), _feats(5)
    with pytest.raises(ValueError, match='backend'):
        topk_search(q, b, 2, backend='annoy')
    with pytest.raises(ValueError, match='metric'):
        topk_search(q, b, 2, metric='cosine')
    with pytest.raises(ValueError, match='k must be >= 1'):
        topk_search(q, b, 0)
    with pytest.raises(ValueError, match='same D'):
        topk_search(q, _feats(5, d=8), 2)
    with pytest.raises(ValueError, match='empty'):
        topk_search(q, b[:0], 2)
    with pytest.raises(ValueError, match='precision'):
        topk_search(q, b, 2, precision='int8')
    if faiss_available():
        with pytest.raises(ValueError, match='fp32 only'):
            topk_search(q, b, 2, backend='faiss', precision='bf16')
        with pytest.raises(ValueError, match="backend='torch'"):
            topk_search(q, b, 2, backend='faiss', stable=True)


def test_rows_per_chunk():
    assert rows_per_chunk(1 << 20) == 16
    assert rows_per_chunk(0) == 1 << 24
    assert rows_per_chunk(1 << 30) == 1
    assert rows_per_chunk(10, max_elems=25) == 2


def test_knn_search_and_nearest_sqdist_are_this_search():
    """The clustering's searches are topk_search with their own rules."""
    from mmreid_usl.clustering import knn_search
    from mmreid_usl.clustering.source_aware_jaccard import nearest_sqdist
    x = _feats(60, seed=11)
    d, i = knn_search(x, 7, backend='torch')
    d2, i2 = topk_search(x, x, 7, backend='torch')
    assert torch.equal(d, d2) and (i[:, 0] == torch.arange(60)).all()
    q, b = _feats(9, seed=12), _feats(30, seed=13)
    near = nearest_sqdist(q, b, backend='torch')
    val, _ = topk_search(q, b, 1, backend='torch')
    np.testing.assert_array_equal(
        near, np.maximum(val[:, 0].numpy().astype(np.float64), 0))
