# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance, knn_search
from mmreid_usl.registry import TASK_UTILS
from jaccard_reference import dense_jaccard_reference  # tests/ (conftest)


def identity_feats(n=1200, ids=75, dim=64, noise=1.2, seed=0):
    """L2-normalised features: ids of look-alike pairs plus camera shifts."""
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa
    g = unit(rng.standard_normal((ids // 2 + 1, dim)))
    centres = unit(0.6 * g[np.arange(ids) // 2] +
                   0.8 * unit(rng.standard_normal((ids, dim))))
    pids = np.concatenate([np.arange(ids), rng.integers(0, ids, n - ids)])
    cams = unit(rng.standard_normal((4, dim)))[rng.integers(0, 4, n)]
    x = centres[pids] + 0.5 * cams + rng.standard_normal(
        (n, dim)) * noise / np.sqrt(dim)
    return unit(x).astype(np.float32), pids


def to_dense(dist: sp.csr_matrix) -> np.ndarray:
    dense = np.ones(dist.shape, dtype=np.float32)
    coo = dist.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


def check_equal(feats, k1=30, k2=6, eps_list=(0.3, 0.45, 0.6, 0.75)):
    ft = torch.from_numpy(feats)
    sqdist, index = knn_search(ft, k1, backend='torch')
    sparse = JaccardDistance(k1=k1, k2=k2).from_knn(ft, sqdist, index)
    dense = dense_jaccard_reference(feats, index.numpy(), k1=k1, k2=k2)
    assert isinstance(sparse, sp.csr_matrix)
    # exactly the pairs with distance < 1 are stored, values equal
    stored = to_dense(sparse) < 1
    np.testing.assert_array_equal(stored, dense < 1)
    np.testing.assert_allclose(to_dense(sparse), dense, atol=2e-6)
    for eps in eps_list:
        ref = DBSCAN(eps=eps, min_samples=4,
                     metric='precomputed').fit_predict(dense)
        got = DBSCANClusterer(eps=eps, min_samples=4)(dist=sparse)
        np.testing.assert_array_equal(got, ref)
        # sklearn on the raw sparse matrix agrees as well
        raw = DBSCAN(eps=eps, min_samples=4,
                     metric='precomputed').fit_predict(sparse)
        np.testing.assert_array_equal(raw, ref)
    return sparse, dense


def test_sparse_equals_dense_reference():
    feats, _ = identity_feats()
    sparse, _ = check_equal(feats)
    # symmetric and zero on the diagonal
    assert abs(sparse - sparse.T).max() == 0
    np.testing.assert_array_equal(sparse.diagonal(), 0)


def test_duplicates_and_ties():
    feats, _ = identity_feats(n=1000, ids=60, seed=1)
    # exact duplicates (a group larger than k2 and pairs) -> explicit zeros
    feats[10:20] = feats[10]
    feats[100] = feats[101]
    # coarse quantisation creates many tied distances
    feats[500:800] = np.round(feats[500:800] * 4) / 4
    feats[500:800] /= np.linalg.norm(feats[500:800], axis=1, keepdims=True)
    sparse, dense = check_equal(feats)
    assert sparse[100, 101] == 0 and dense[100, 101] == 0
    coo = sparse.tocoo()
    off_diag_zeros = ((coo.data == 0) & (coo.row != coo.col)).sum()
    assert off_diag_zeros > 0  # explicit zeros are kept


@pytest.mark.parametrize('k1,k2', [(20, 6), (25, 1), (13, 3)])
def test_other_k(k1, k2):
    # k1=25: round(12.5) = 12 (numpy rounding), k2=1: no query expansion
    feats, _ = identity_feats(n=700, ids=50, seed=2)
    check_equal(feats, k1=k1, k2=k2, eps_list=(0.5, 0.7))


def test_call_and_registry():
    feats, pids = identity_feats(n=400, ids=30, seed=3)
    dist = TASK_UTILS.build(dict(type='JaccardDistance', k1=20,
                                 k2=6))(torch.from_numpy(feats))
    assert dist.shape == (400, 400) and dist.dtype == np.float32
    assert dist.max() < 1 and dist.min() >= 0
    # reduced precision kNN recomputes d^2 in fp32: nearly the same distance
    dist_bf16 = JaccardDistance(
        k1=20, knn_precision='bf16')(torch.from_numpy(feats))
    labels = DBSCANClusterer(eps=0.6)(dist=dist)
    labels_bf16 = DBSCANClusterer(eps=0.6)(dist=dist_bf16)
    assert adjusted_rand_score(labels, labels_bf16) > 0.8


def test_invalid_args():
    with pytest.raises(ValueError):
        JaccardDistance(k1=5, k2=6)


def test_max_distance_and_small_chunks():
    feats, _ = identity_feats(n=600, ids=40, seed=4)
    ft = torch.from_numpy(feats)
    sqdist, index = knn_search(ft, 20)
    full = JaccardDistance(k1=20).from_knn(ft, sqdist, index)
    pruned = JaccardDistance(k1=20, max_distance=0.7,
                             max_chunk_elems=1000).from_knn(ft, sqdist, index)
    assert pruned.max() < 0.7 and pruned.nnz < full.nnz
    np.testing.assert_array_equal(
        to_dense(pruned) < 0.7, to_dense(full) < 0.7)
    np.testing.assert_array_equal(
        DBSCANClusterer(eps=0.6)(dist=pruned),
        DBSCANClusterer(eps=0.6)(dist=full))


def copies_of_one_image(n, dim=16):
    """``n`` identical L2-normalised features (one image copied n times)."""
    one = torch.nn.functional.normalize(torch.ones(1, dim), dim=1)
    return one.repeat(n, 1)


def test_pair_budget_is_checked_before_the_pairs_are_allocated(monkeypatch):
    """Issue 24 case 12: copies of one image used to store O(N²) pairs (7 GB
    at 10,000 copies) before DBSCAN found one cluster. The budget is now
    checked before step 6 allocates a single pair."""
    from mmreid_usl.clustering.jaccard import PairBudgetError

    def must_not_run(*args, **kwargs):
        raise AssertionError('the pairs were allocated before the budget '
                             'check')

    monkeypatch.setattr(JaccardDistance, '_jaccard_upper_chunks',
                        must_not_run)
    monkeypatch.setattr(JaccardDistance, '_symmetric_csr', must_not_run)
    with pytest.raises(PairBudgetError) as err:
        JaccardDistance(k1=10, k2=3, max_distance=0.601,
                        max_pairs=2000)(copies_of_one_image(300))
    msg = str(err.value)
    # names the problem, the numbers and what to do
    for part in ('the 300 images would keep about', 'max_pairs=2,000',
                 'many copies of one image', '300 of the 300 images have '
                 'an exact copy', 'distance.max_pairs=', 'max_distance'):
        assert part in msg, (part, msg)


def test_pair_budget_estimate_is_exact_on_small_sets():
    """With at most PAIR_SAMPLE_ROWS images every row is evaluated: a budget
    of exactly the stored pairs passes, one less fails before allocating."""
    from mmreid_usl.clustering.jaccard import PAIR_SAMPLE_ROWS, \
        PairBudgetError
    feats, _ = identity_feats(n=PAIR_SAMPLE_ROWS, ids=8, dim=16, seed=2)
    ft = torch.from_numpy(feats)
    nnz = JaccardDistance(k1=10, k2=3, max_pairs=None)(ft).nnz
    assert JaccardDistance(k1=10, k2=3, max_pairs=nnz)(ft).nnz == nnz
    with pytest.raises(PairBudgetError, match='would keep about'):
        JaccardDistance(k1=10, k2=3, max_pairs=nnz - 1)(ft)


def test_pair_budget_bounds_the_pairs_while_they_are_collected(monkeypatch):
    """Should the estimate miss (it samples rows), collecting the pairs
    stops as soon as they exceed the budget, not after all N² of them."""
    from mmreid_usl.clustering.jaccard import PairBudgetError
    monkeypatch.setattr(JaccardDistance, 'check_pair_budget',
                        lambda self, *args, **kwargs: None)
    chunks = []
    original = JaccardDistance._jaccard_upper_chunks

    def counted(self, *args, **kwargs):
        for chunk in original(self, *args, **kwargs):
            chunks.append(len(chunk[0]))
            yield chunk

    monkeypatch.setattr(JaccardDistance, '_jaccard_upper_chunks', counted)
    jd = JaccardDistance(k1=10, k2=3, max_pairs=2000, max_chunk_elems=2000)
    with pytest.raises(PairBudgetError, match='keep at least'):
        jd(copies_of_one_image(300))
    # stopped within one chunk of the budget (2 stored pairs per j > i)
    assert 2 * sum(chunks[:-1]) <= 2000 < 2 * sum(chunks)
    assert len(chunks) < 300


def test_pair_budget_argument_is_checked():
    with pytest.raises(ValueError, match='max_pairs'):
        JaccardDistance(max_pairs=0)
    assert JaccardDistance(max_pairs=None).max_pairs is None
