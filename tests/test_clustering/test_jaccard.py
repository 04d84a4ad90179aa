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
