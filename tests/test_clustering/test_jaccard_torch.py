# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The torch path of JaccardDistance (``jaccard_device``, issue 26 item 3):
on the CPU it stores the pairs of the numpy/scipy path, with values equal
to float32 rounding and identical DBSCAN labels."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance, knn_search
from mmreid_usl.clustering.jaccard import PairBudgetError
from mmreid_usl.clustering.jaccard_torch import (JACCARD_DEVICES,
                                                 resolve_jaccard_device)
from mmreid_usl.registry import TASK_UTILS


def clustered_feats(n, ids, dim=32, noise=0.6, seed=0):
    """L2-normalised float32 features of ``ids`` Gaussian clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    pids = rng.integers(0, ids, n)
    x = centres[pids] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def both_paths(feats, k1=20, k2=6, precision='fp32', **kwargs):
    """``from_knn`` of the CPU path and of the torch path (on the CPU) on
    the same kNN."""
    ft = torch.from_numpy(feats)
    sqdist, index = knn_search(ft, min(k1, len(feats)), backend='torch',
                               precision=precision)
    out = []
    for device in ('cpu', 'torch'):
        jd = JaccardDistance(k1=k1, k2=k2, knn_precision=precision,
                             jaccard_device=device, **kwargs)
        out.append(jd.from_knn(ft, sqdist, index))
    return out


def assert_same(cpu, tor, eps_list=(0.5, 0.6, 0.7)):
    """Same stored entries (explicit zeros included, same order), values to
    float32 rounding, identical DBSCAN labels."""
    assert isinstance(tor, sp.csr_matrix) and tor.dtype == np.float32
    assert tor.shape == cpu.shape
    np.testing.assert_array_equal(tor.indptr, cpu.indptr)
    np.testing.assert_array_equal(tor.indices, cpu.indices)
    np.testing.assert_allclose(tor.data, cpu.data, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(tor.data == 0, cpu.data == 0)
    for eps in eps_list:
        np.testing.assert_array_equal(
            DBSCANClusterer(eps=eps, min_samples=4)(dist=tor),
            DBSCANClusterer(eps=eps, min_samples=4)(dist=cpu))


@pytest.mark.parametrize('n,ids,k1,k2', [
    (8, 2, 10, 3),  # k1 > N: lists of N entries
    (60, 6, 10, 3),
    (300, 20, 20, 6),
    (500, 30, 25, 1),  # round(12.5) = 12 (numpy rounding); no expansion
    (400, 25, 13, 3),
    (700, 40, 30, 6),
])
def test_torch_path_equals_cpu_path(n, ids, k1, k2):
    cpu, tor = both_paths(clustered_feats(n, ids, seed=n), k1=k1, k2=k2)
    assert_same(cpu, tor)
    assert abs(tor - tor.T).max() == 0
    np.testing.assert_array_equal(tor.diagonal(), 0)


def test_duplicates_and_ties():
    feats = clustered_feats(600, 40, seed=1)
    # exact duplicates (a group larger than k2, and a pair) and coarse
    # quantisation (many tied distances)
    feats[10:20] = feats[10]
    feats[100] = feats[101]
    q = np.round(feats[300:500] * 4) / 4
    feats[300:500] = q / np.linalg.norm(q, axis=1, keepdims=True)
    cpu, tor = both_paths(feats, k1=20, k2=6)
    assert_same(cpu, tor)
    coo = tor.tocoo()
    assert ((coo.data == 0) & (coo.row != coo.col)).sum() > 0
    assert tor[100, 101] == 0


@pytest.mark.parametrize('max_distance', [0.61, 0.7])
def test_max_distance_and_small_chunks(max_distance):
    feats = clustered_feats(500, 30, seed=4)
    cpu, tor = both_paths(feats, k1=20, k2=6, max_distance=max_distance,
                          max_chunk_elems=500)
    assert_same(cpu, tor, eps_list=(0.5, 0.6))
    assert tor.max() < max_distance
    full = both_paths(feats, k1=20, k2=6)[1]
    assert tor.nnz < full.nnz


def test_chunk_size_does_not_change_the_values():
    feats = clustered_feats(300, 20, seed=5)
    _, big = both_paths(feats, k1=20, k2=6)
    _, small = both_paths(feats, k1=20, k2=6, max_chunk_elems=64)
    assert (big != small).nnz == 0
    np.testing.assert_array_equal(big.data, small.data)


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_reduced_precision_knn(precision):
    # every d² recomputed in fp32 (the kNN distances are not reused)
    cpu, tor = both_paths(clustered_feats(300, 20, seed=6), k1=20, k2=6,
                          precision=precision)
    assert_same(cpu, tor)


def test_without_knn_distances():
    feats = torch.from_numpy(clustered_feats(200, 15, seed=7))
    sqdist, index = knn_search(feats, 15, backend='torch')
    cpu = JaccardDistance(k1=15, k2=3, jaccard_device='cpu').from_knn(
        feats, sqdist, index)
    tor = JaccardDistance(k1=15, k2=3, jaccard_device='torch').from_knn(
        feats, None, index)
    assert_same(cpu, tor)


def test_call_registry_and_pruning_radius():
    feats = torch.from_numpy(clustered_feats(300, 20, seed=8))
    cfg = dict(type='JaccardDistance', k1=20, k2=6, knn_backend='torch')
    cpu = TASK_UTILS.build(dict(cfg, jaccard_device='cpu'))(
        feats, pruning_radius=0.601)
    tor = TASK_UTILS.build(dict(cfg, jaccard_device='torch'))(
        feats, pruning_radius=0.601)
    assert tor.max_distance == cpu.max_distance == pytest.approx(0.601)
    assert_same(cpu.matrix, tor.matrix, eps_list=(0.6, ))


def test_device_option(monkeypatch):
    with pytest.raises(ValueError, match='jaccard_device'):
        JaccardDistance(jaccard_device='gpu')
    assert JaccardDistance().jaccard_device == 'auto'
    index = torch.zeros(3, 2, dtype=torch.int64)
    assert resolve_jaccard_device('cpu', index) is None
    assert resolve_jaccard_device('auto', index) is None  # CPU tensors
    assert resolve_jaccard_device('torch', index) == torch.device('cpu')
    assert set(JACCARD_DEVICES) == {'auto', 'cpu', 'cuda', 'torch'}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='no CUDA device'):
            resolve_jaccard_device('cuda', index)
    # CPU tensors with 'auto': the numpy/scipy path, untouched
    feats = torch.from_numpy(clustered_feats(100, 8, seed=9))

    def must_not_run(*args, **kwargs):
        raise AssertionError('wrong path')

    monkeypatch.setattr(JaccardDistance, '_from_knn_torch', must_not_run)
    JaccardDistance(k1=10, k2=3)(feats)
    monkeypatch.undo()
    monkeypatch.setattr(JaccardDistance, '_jaccard_upper_chunks',
                        must_not_run)
    JaccardDistance(k1=10, k2=3, jaccard_device='torch')(feats)


def copies_of_one_image(n, dim=16):
    one = torch.nn.functional.normalize(torch.ones(1, dim), dim=1)
    return one.repeat(n, 1)


def test_pair_budget_before_the_pairs_are_allocated(monkeypatch):
    """Same estimate and message as the CPU path, before any pair."""
    def must_not_run(*args, **kwargs):
        raise AssertionError('pairs allocated before the budget check')

    messages = []
    for device in ('cpu', 'torch'):
        with pytest.raises(PairBudgetError) as err:
            JaccardDistance(k1=10, k2=3, max_distance=0.601, max_pairs=2000,
                            jaccard_device=device)(copies_of_one_image(300))
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert 'would keep about' in messages[1]
    monkeypatch.setattr(JaccardDistance, '_jaccard_torch', must_not_run)
    with pytest.raises(PairBudgetError):
        JaccardDistance(k1=10, k2=3, max_pairs=2000,
                        jaccard_device='torch')(copies_of_one_image(300))


def test_pair_budget_exact_on_small_sets():
    feats = torch.from_numpy(clustered_feats(64, 8, dim=16, seed=2))
    nnz = JaccardDistance(k1=10, k2=3, max_pairs=None,
                          jaccard_device='torch')(feats).nnz
    assert nnz == JaccardDistance(k1=10, k2=3, max_pairs=None)(feats).nnz
    assert JaccardDistance(k1=10, k2=3, max_pairs=nnz,
                           jaccard_device='torch')(feats).nnz == nnz
    with pytest.raises(PairBudgetError, match='would keep about'):
        JaccardDistance(k1=10, k2=3, max_pairs=nnz - 1,
                        jaccard_device='torch')(feats)


def test_pair_budget_while_collecting(monkeypatch):
    """Should the estimate miss, collecting stops within a chunk."""
    monkeypatch.setattr(JaccardDistance, '_check_pair_budget_torch',
                        lambda self, *args, **kwargs: None)
    with pytest.raises(PairBudgetError, match='keep at least'):
        JaccardDistance(k1=10, k2=3, max_pairs=2000, max_chunk_elems=2000,
                        jaccard_device='torch')(copies_of_one_image(300))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_equals_cpu_path():
    feats = torch.from_numpy(clustered_feats(700, 40, seed=3))
    sqdist, index = knn_search(feats, 30, backend='torch')
    cpu = JaccardDistance(jaccard_device='cpu').from_knn(feats, sqdist, index)
    # 'auto' with the kNN on the GPU takes the torch path there
    tor = JaccardDistance().from_knn(feats.cuda(), sqdist.cuda(),
                                     index.cuda())
    assert_same(cpu, tor)
    forced = JaccardDistance(jaccard_device='cuda').from_knn(
        feats, sqdist, index)
    assert_same(cpu, forced)
