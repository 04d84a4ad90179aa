# Copyright (c) mmreid_usl contributors. All rights reserved.
"""RhoDBSCANClusterer: eps from rho vs a dense reference, kept across
resume."""
import io

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN

from mmreid_usl.clustering import (DistanceMatrix, RhoDBSCANClusterer,
                                   UnstoredDistance, knn_search)
from mmreid_usl.engine.hooks import PseudoLabelHook


def dense_eps(full: np.ndarray, rho: float) -> float:
    """The official rule: mean of the smallest round(rho * M) non-zero
    upper-triangular entries."""
    tri = np.triu(full, 1)
    tri = np.sort(tri[np.nonzero(tri)], axis=None)
    top = int(np.round(rho * tri.size))
    return float(tri[:top].mean())


def knn_sparse(n=150, k=8, seed=0, base=1.0, row_scale=0.0):
    """A symmetric sparse distance storing each point's kNN pairs; missing
    pairs are at base + row_i + row_j (recorded as unstored_distance of the
    DistanceMatrix)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    d2, idx = knn_search(torch.from_numpy(x), k, backend='torch')
    rows = np.repeat(np.arange(n), k)
    cols = idx.numpy().ravel()
    vals = (d2.numpy().ravel() / 4.0).clip(0)  # in [0, 1)
    m = sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    m = m.maximum(m.T).tocsr()  # symmetric (a pair listed once or twice)
    m.setdiag(0)
    m.sort_indices()
    row = row_scale * rng.random(n) if row_scale else None
    floor = UnstoredDistance(base=base, row=row)
    full = floor.block(np.arange(n), n)
    coo = m.tocoo()
    full[coo.row, coo.col] = coo.data
    np.fill_diagonal(full, 0)
    return DistanceMatrix(m, unstored_distance=floor), full


@pytest.mark.parametrize('rho', [1.6e-3, 5e-3, 2e-2])
def test_sparse_eps_equals_dense_reference(rho):
    dist, full = knn_sparse()
    clusterer = RhoDBSCANClusterer(rho=rho, min_samples=4)
    eps = clusterer.compute_eps(dist)
    assert clusterer.eps_info['method'] == 'stored'  # kNN holds them
    assert eps == pytest.approx(dense_eps(full, rho), rel=1e-6)
    # the dense path is the reference itself
    assert RhoDBSCANClusterer(rho=rho).compute_eps(full) == pytest.approx(
        dense_eps(full, rho), rel=1e-12)


def test_exactness_condition_checked_and_chunked_fallback():
    """rho larger than what the kNN pairs hold, or missing pairs below the
    k-th stored value: the exact chunked pass gives the dense value."""
    dist, full = knn_sparse(n=80, k=4)
    rho = 0.2  # more pairs than the 4-NN lists store
    clusterer = RhoDBSCANClusterer(rho=rho, chunk_rows=7)
    assert clusterer.compute_eps(dist) == pytest.approx(
        dense_eps(full, rho), rel=1e-9)
    assert clusterer.eps_info['method'] == 'chunked'
    # missing pairs cheaper than stored ones (base 0.05 + rows): enough
    # stored pairs but the condition fails -> still exact
    dist, full = knn_sparse(n=80, k=10, base=0.05, row_scale=0.1)
    clusterer = RhoDBSCANClusterer(rho=0.01, chunk_rows=11)
    assert clusterer.compute_eps(dist) == pytest.approx(
        dense_eps(full, 0.01), rel=1e-9)
    assert clusterer.eps_info['method'] == 'chunked'
    assert clusterer.eps_info['kth_stored'] > \
        clusterer.eps_info['missing_bound']
    # only a bound on the missing pairs: no exact answer -> clear error
    dist = DistanceMatrix(dist.matrix,
                          unstored_distance=UnstoredDistance(base=0.05,
                                                             cap=0.06))
    with pytest.raises(ValueError, match='not all among the stored'):
        RhoDBSCANClusterer(rho=0.01).compute_eps(dist)


def test_plain_jaccard_convention_and_zero_pairs():
    """A bare sparse matrix (no DistanceMatrix): missing pairs are 1;
    zero distances of distinct pairs are left out as in the official code."""
    dist, full = knn_sparse(n=60, k=5)
    dist = dist.matrix.tolil()
    dist[3, 7] = dist[7, 3] = 0.0  # an explicit zero pair
    full[3, 7] = full[7, 3] = 0.0
    dist = dist.tocsr()
    assert RhoDBSCANClusterer(rho=0.01).compute_eps(dist) == pytest.approx(
        dense_eps(full, 0.01), rel=1e-9)


def test_eps_computed_once_then_kept_and_labels_equal_dbscan():
    dist, full = knn_sparse(n=200, k=10, seed=4)
    clusterer = RhoDBSCANClusterer(rho=0.01, min_samples=3)
    labels = clusterer(dist=dist)
    eps = clusterer.eps
    ref = DBSCAN(eps=eps, min_samples=3,
                 metric='precomputed').fit_predict(full)
    np.testing.assert_array_equal(labels < 0, ref < 0)
    assert labels.max() + 1 == ref.max() + 1
    other, _ = knn_sparse(n=200, k=10, seed=5)
    clusterer(dist=other)
    assert clusterer.eps == eps  # not recomputed
    # an eps that reaches the missing pairs is refused
    with pytest.raises(ValueError, match='does not store'):
        RhoDBSCANClusterer(eps=0.99)(dist=knn_sparse(base=0.5)[0])


def test_eps_kept_across_resume_through_hook_checkpoint():
    feats = torch.nn.functional.normalize(
        torch.from_numpy(
            np.random.default_rng(0).standard_normal((160, 8)).astype(
                np.float32)),
        dim=1)
    labeler = dict(
        type='PseudoLabeler',
        distance=dict(type='JaccardDistance', k1=10, k2=3),
        clusterer=dict(type='RhoDBSCANClusterer', rho=0.01, min_samples=2))
    hook = PseudoLabelHook(labeler=labeler)
    hook.labeler(feats)
    eps = hook.labeler.clusterer.eps
    assert eps is not None
    checkpoint = {}
    hook.before_save_checkpoint(None, checkpoint)
    # through a file, loaded with weights_only=True
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    buf.seek(0)
    checkpoint = torch.load(buf, weights_only=True)
    resumed = PseudoLabelHook(labeler=labeler)
    assert resumed.labeler.clusterer.eps is None
    resumed.after_load_checkpoint(None, checkpoint)
    assert resumed.labeler.clusterer.eps == eps
    # the resumed labeler does not recompute on other data
    resumed.labeler(feats[:100])
    assert resumed.labeler.clusterer.eps == eps
    # a fresh clusterer's state (eps None) round-trips too
    fresh = RhoDBSCANClusterer()
    fresh.load_state_dict(RhoDBSCANClusterer().state_dict())
    assert fresh.eps is None


def test_bad_arguments():
    with pytest.raises(ValueError, match='rho'):
        RhoDBSCANClusterer(rho=0)
    with pytest.raises(ValueError, match='eps'):
        RhoDBSCANClusterer(eps=1.5)
    with pytest.raises(KeyError, match='eps'):
        RhoDBSCANClusterer().load_state_dict({})
