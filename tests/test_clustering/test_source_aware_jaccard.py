# Copyright (c) mmreid_usl contributors. All rights reserved.
"""SourceAwareJaccardDistance against a dense reference."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmreid_usl.clustering import (PseudoLabeler, SourceAwareJaccardDistance,
                                   knn_search)
from mmreid_usl.clustering.source_aware_jaccard import nearest_sqdist
from jaccard_reference import dense_jaccard_reference  # tests/ (conftest)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def domain_feats(n=300, m=120, ids=40, dim=32, seed=0):
    """Target features (ids with noise) and a shifted source domain that
    covers only part of the target's identities."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((ids, dim)))
    pids = rng.integers(0, ids, n)
    target = _unit(centres[pids] + 0.35 * rng.standard_normal((n, dim)))
    src_ids = rng.integers(0, ids // 2, m)  # half of the looks only
    source = _unit(centres[src_ids] + 0.3 * rng.standard_normal((m, dim)) +
                   0.2)
    return target.astype(np.float32), source.astype(np.float32)


def dense_reference(target, source, k1, k2, lam):
    """The mixed distance, dense, by the formula written out."""
    t = torch.from_numpy(target)
    _, index = knn_search(t, k1, backend='torch')
    dj = dense_jaccard_reference(target, index.numpy(), k1=k1,
                                 k2=k2).astype(np.float64)
    d2 = ((target[:, None, :].astype(np.float64) -
           source[None, :, :].astype(np.float64))**2).sum(-1)
    s_raw = (1 - np.exp(-d2)).min(1)  # min over the source of 1 - e^-d2
    s = s_raw / s_raw.max()
    full = (1 - lam) * dj + lam * (s[:, None] + s[None, :])
    np.fill_diagonal(full, 0)
    return full, dj, s


@pytest.mark.parametrize('lam', [0.1, 0.3])
def test_matches_dense_reference(lam):
    target, source = domain_feats()
    k1, k2 = 12, 4
    full, dj, s = dense_reference(target, source, k1, k2, lam)
    dist = SourceAwareJaccardDistance(
        k1=k1, k2=k2, lambda_source=lam, knn_backend='torch')(
            torch.from_numpy(target),
            reference_features=torch.from_numpy(source))
    assert isinstance(dist.matrix, sp.csr_matrix)
    dense = dist.toarray().astype(np.float64)
    stored = np.zeros(dense.shape, dtype=bool)
    coo = dist.tocoo()
    stored[coo.row, coo.col] = True
    # stored = the pairs with overlapping neighbourhoods (d_J < 1) + diagonal
    np.testing.assert_array_equal(stored | np.eye(len(s), dtype=bool),
                                  (dj < 1) | np.eye(len(s), dtype=bool))
    np.testing.assert_allclose(dense[stored], full[stored], atol=3e-6)
    # the missing pairs are exactly what unstored_distance says
    floor = dist.unstored_distance
    assert floor.exact
    rows = np.arange(len(s))
    np.testing.assert_allclose(floor.block(rows, len(s))[~stored],
                               full[~stored], atol=1e-9)
    assert floor.lower_bound() <= full[~stored].min() + 1e-12
    # the source term is the documented s
    got_s = SourceAwareJaccardDistance(knn_backend='torch').source_term(
        torch.from_numpy(target), torch.from_numpy(source))
    np.testing.assert_allclose(got_s, s, atol=1e-6)
    assert got_s.max() == pytest.approx(1.0)


def test_faiss_and_torch_nearest_agree():
    target, source = domain_feats(n=200, m=90, seed=3)
    a = nearest_sqdist(torch.from_numpy(target), torch.from_numpy(source),
                       backend='torch', chunk_size=17)
    ref = ((target[:, None] - source[None])**2).sum(-1).min(1)
    np.testing.assert_allclose(a, ref, atol=1e-5)
    pytest.importorskip('faiss')
    b = nearest_sqdist(torch.from_numpy(target), torch.from_numpy(source),
                       backend='faiss')
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_pruned_output_keeps_every_pair_below_max_distance():
    target, source = domain_feats(seed=1)
    full, _, _ = dense_reference(target, source, 12, 4, 0.1)
    dist = SourceAwareJaccardDistance(
        k1=12, k2=4, lambda_source=0.1, max_distance=0.35,
        knn_backend='torch')(torch.from_numpy(target),
                             reference_features=torch.from_numpy(source))
    coo = dist.tocoo()
    off = coo.row != coo.col
    assert (coo.data[off] < 0.35).all()
    np.testing.assert_allclose(coo.data[off], full[coo.row[off],
                                                   coo.col[off]], atol=3e-6)
    # every dense pair below max_distance is stored
    want = set(zip(*np.nonzero(np.triu(full < 0.35, 1))))
    got = {(i, j) for i, j in zip(coo.row, coo.col) if i < j}
    assert want == got
    assert not dist.unstored_distance.exact
    assert dist.unstored_distance.lower_bound() <= 0.35


def test_labeler_passes_reference_and_labels_equal_dense_dbscan():
    """Through the PseudoLabeler (reference bank given), with eps from rho:
    the labels equal sklearn DBSCAN on the dense reference matrix."""
    from sklearn.cluster import DBSCAN
    target, source = domain_feats(n=400, seed=2)
    full, _, _ = dense_reference(target, source, 12, 4, 0.1)
    labeler = PseudoLabeler(
        distance=dict(
            type='SourceAwareJaccardDistance', k1=12, k2=4,
            knn_backend='torch'),
        clusterer=dict(type='RhoDBSCANClusterer', rho=5e-3, min_samples=4))
    result = labeler(
        torch.from_numpy(target),
        reference_features=torch.from_numpy(source))
    eps = labeler.clusterer.eps
    tri = full[np.triu_indices(len(full), 1)]
    tri = np.sort(tri[tri != 0])
    assert eps == pytest.approx(tri[:int(np.round(5e-3 * tri.size))].mean(),
                                rel=1e-5)
    ref = DBSCAN(eps=eps, min_samples=4,
                 metric='precomputed').fit_predict(full)
    from sklearn.metrics import adjusted_rand_score
    assert result.num_clusters >= 2
    assert adjusted_rand_score(ref, result.labels.numpy()) == 1.0
    np.testing.assert_array_equal(ref < 0, result.labels.numpy() < 0)
    # the second call is pruned to eps + 1e-3 and gives the same labels
    again = labeler(
        torch.from_numpy(target),
        reference_features=torch.from_numpy(source))
    # (the radius is passed to the call: the distance is not modified)
    assert labeler.pruning_radius() == pytest.approx(eps + 1e-3)
    assert labeler.distance.max_distance == 1.0
    assert labeler.distance.jaccard.max_distance == 1.0
    np.testing.assert_array_equal(again.labels.numpy(),
                                  result.labels.numpy())


def test_missing_reference_is_a_clear_error():
    target, _ = domain_feats(n=50)
    with pytest.raises(ValueError, match='reference_dataloader'):
        SourceAwareJaccardDistance(k1=5, k2=2)(torch.from_numpy(target))
    # lambda 0 is plain Jaccard and needs no source
    dist = SourceAwareJaccardDistance(
        k1=5, k2=2, lambda_source=0.0)(torch.from_numpy(target))
    assert dist.unstored_distance.lower_bound() == 1.0
    with pytest.raises(ValueError, match='lambda_source'):
        SourceAwareJaccardDistance(lambda_source=1.0)


# ----------------------------------------------------------------------
# source_feature='raw_fp16': Theory's reid/rerank.py on raw features
def test_raw_fp16_source_term_by_hand():
    # nearest-source squared distances 0.25, 4, 9 and 100 (1-d offsets in
    # the first coordinate; the source points sit on the axis)
    source = torch.tensor([[0., 0.], [50., 0.]])
    target = torch.tensor([[0.5, 0.], [2., 0.], [50., 3.], [0., 10.]])
    d = SourceAwareJaccardDistance(source_feature='raw_fp16',
                                   knn_backend='torch')
    assert d.needs_raw_features
    s = d.source_term_fp16(target, source)
    # float16: 1 - e^-0.25 = 0.2212 -> 0.2212 (spacing 2^-13 there);
    # 1 - e^-4 = 0.98168 -> 0.98145 (spacing 2^-11 = 0.000488 below 1);
    # 1 - e^-9 = 0.99988 and 1 - e^-100 round to exactly 1.0 (the max)
    assert s[0] == pytest.approx(1 - np.exp(-0.25), abs=2e-4)
    assert s[1] == pytest.approx(1 - np.exp(-4), abs=5e-4)
    assert s[2] == 1.0 and s[3] == 1.0
    assert s[1] != pytest.approx(1 - np.exp(-4), abs=1e-5)  # fp16, not fp64
    # the float64 formula keeps 1 - e^-9 below 1
    s64 = d.source_term(target, source)
    assert s64[2] < 1.0 and s64[3] == 1.0


def test_raw_fp16_saturates_to_a_constant_on_raw_scale_features():
    # raw pool5-like features (norms ~30): every nearest-source d^2 >> 8,
    # so every s_i = 1 and the source term is the constant 2 lambda
    target, source = domain_feats(n=120, m=60, seed=3)
    raw_t = torch.from_numpy(target) * 30
    raw_s = torch.from_numpy(source) * 30
    lam = 0.1
    d = SourceAwareJaccardDistance(k1=8, k2=3, lambda_source=lam,
                                   knn_backend='torch',
                                   source_feature='raw_fp16')
    norm_t = torch.nn.functional.normalize(raw_t, dim=1)
    norm_s = torch.nn.functional.normalize(raw_s, dim=1)
    dist = d(norm_t, reference_features=norm_s, raw_features=raw_t,
             raw_reference_features=raw_s)
    assert np.all(d.last_source_term == 1.0)
    assert d.last_stats['source_term_at_max'] == 1.0
    assert d.last_stats['source_term_min'] == 1.0
    dj = d.jaccard(norm_t).tocsr()
    coo, ref = dist.tocoo(), dj.tocoo()
    got = {(i, j): v for i, j, v in zip(coo.row, coo.col, coo.data)}
    for i, j, v in zip(ref.row, ref.col, ref.data):
        expect = 0.0 if i == j else (1 - lam) * v + 2 * lam
        assert got[(i, j)] == pytest.approx(expect, abs=1e-6)
    # the L2-normalised variant varies from sample to sample
    d_norm = SourceAwareJaccardDistance(k1=8, k2=3, lambda_source=lam,
                                        knn_backend='torch')
    assert not d_norm.needs_raw_features
    d_norm(norm_t, reference_features=norm_s)
    assert d_norm.last_source_term.min() < 0.9
    assert d_norm.last_stats['source_term_at_max'] < 0.1


def test_raw_fp16_needs_the_raw_banks():
    target, source = domain_feats(n=40, m=10)
    t, s = torch.from_numpy(target), torch.from_numpy(source)
    d = SourceAwareJaccardDistance(k1=5, k2=2, knn_backend='torch',
                                   source_feature='raw_fp16')
    with pytest.raises(ValueError, match='raw_features'):
        d(t, reference_features=s, raw_reference_features=s)
    with pytest.raises(ValueError, match='source features'):
        d(t, reference_features=s, raw_features=t)
    with pytest.raises(ValueError, match='source_feature'):
        SourceAwareJaccardDistance(source_feature='raw')
    # the labeler forwards the raw banks (a subset with fraction < 1)
    labeler = PseudoLabeler(
        distance=d,
        clusterer=dict(type='DBSCANClusterer', eps=0.5, min_samples=2),
        min_clusters=0)
    assert labeler.needs_raw_features
    with pytest.raises(ValueError, match='unnormalised'):
        labeler(t, reference_features=s)
    labeler(t, reference_features=s, raw_features=t * 30,
            raw_reference_features=s * 30)
    assert labeler.last_stats['source_term_at_max'] == 1.0
    labeler.fraction = 0.5
    labeler(t, reference_features=s, raw_features=t * 30,
            raw_reference_features=s * 30)
    assert len(d.last_source_term) == 20


def test_max_pairs_is_the_budget_of_the_jaccard_term():
    """``max_pairs`` reaches the inner :class:`JaccardDistance` (it used to
    keep its default budget whatever was configured)."""
    from mmreid_usl.clustering.jaccard import (PAIR_SAMPLE_ROWS,
                                               PairBudgetError)
    target, source = domain_feats(n=PAIR_SAMPLE_ROWS, m=30, seed=4)
    t, s = torch.from_numpy(target), torch.from_numpy(source)

    def dist(max_pairs):
        return SourceAwareJaccardDistance(
            k1=10, k2=3, knn_backend='torch', max_pairs=max_pairs)

    unbounded = dist(None)
    assert unbounded.jaccard.max_pairs is None
    # with at most PAIR_SAMPLE_ROWS images the budget check is exact
    nnz = unbounded(t, reference_features=s).nnz
    assert dist(nnz)(t, reference_features=s).nnz == nnz
    with pytest.raises(PairBudgetError, match='max_pairs='):
        dist(nnz - 1)(t, reference_features=s)
    with pytest.raises(ValueError, match='max_pairs'):
        dist(0)
    # the default is JaccardDistance's
    assert SourceAwareJaccardDistance().jaccard.max_pairs == 1 << 25


def test_passes_knn_cfg_and_jaccard_device_to_the_jaccard_term():
    """``knn_cfg`` / ``jaccard_device`` reach the inner JaccardDistance; an
    approximate Jaccard kNN (every IVF cell probed: the exact neighbours)
    leaves the distance unchanged, and the source term stays exact."""
    pytest.importorskip('faiss')
    target, source = domain_feats(seed=4)
    t, src = torch.from_numpy(target), torch.from_numpy(source)
    exact = SourceAwareJaccardDistance(k1=12, k2=4, lambda_source=0.2)(
        t, reference_features=src)
    approx = SourceAwareJaccardDistance(
        k1=12, k2=4, lambda_source=0.2, knn_backend='ivf',
        knn_cfg=dict(nlist=4, nprobe=4), jaccard_device='torch')
    assert approx.jaccard.knn_cfg == dict(nlist=4, nprobe=4)
    assert approx.jaccard.jaccard_device == 'torch'
    got = approx(t, reference_features=src)
    np.testing.assert_allclose(got.toarray(), exact.toarray(), atol=1e-5)
    np.testing.assert_allclose(approx.last_source_term,
                               SourceAwareJaccardDistance().source_term(
                                   t, src), atol=1e-12)
