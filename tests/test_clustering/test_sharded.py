# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Sharded pseudo-labelling (issue 26): 2 and 4 gloo processes on one machine
give the one-process Jaccard matrix bit for bit and the same DBSCAN labels.

faiss's BLAS path is exercised with query/database blocks of 128 rows (set
in the reference and in every worker; the default 4096 would need N >= W *
4096), the per-pair path with a small N. Every process runs one thread: the
float32 BLAS products depend on the thread count (see clustering/sharded/)."""
import os
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from free_port import free_port

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance
from mmreid_usl.clustering.sharded import (knn_shard_bounds, shard_bounds,
                                           sharded_pseudo_labels)

faiss = pytest.importorskip('faiss')

BLOCK = 128


def _setup_threads(block: int) -> None:
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_query_bs = block
    faiss.cvar.distance_compute_blas_database_bs = block


@contextmanager
def _threads(block: int):
    """:func:`_setup_threads` in this (the pytest) process for the block,
    undone after it: the settings are process-wide and would otherwise reach
    whichever tests run next in this process (another set under
    pytest-xdist than in a serial run)."""
    old = (torch.get_num_threads(), faiss.omp_get_max_threads(),
           faiss.cvar.distance_compute_blas_query_bs,
           faiss.cvar.distance_compute_blas_database_bs)
    _setup_threads(block)
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        faiss.omp_set_num_threads(old[1])
        (faiss.cvar.distance_compute_blas_query_bs,
         faiss.cvar.distance_compute_blas_database_bs) = old[2:]


def _feats(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Identities of 16 images on average, camera shifts, unit norm."""
    rng = np.random.default_rng(seed)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa
    ids = n // 16
    centres = unit(rng.standard_normal((ids, dim)))
    pids = rng.integers(0, ids, n)
    cams = unit(rng.standard_normal((4, dim)))[rng.integers(0, 4, n)]
    x = centres[pids] + 0.3 * cams + rng.standard_normal(
        (n, dim)) * 1.0 / np.sqrt(dim)
    return unit(x).astype(np.float32)


def _jaccard() -> JaccardDistance:
    return JaccardDistance(k1=20, k2=6, max_distance=0.61)


def _cluster(dist):
    return DBSCANClusterer(eps=0.6, min_samples=4)(dist=dist)


def _worker(rank: int, world: int, port: int, feats: np.ndarray, block: int,
            out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    _setup_threads(block)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        n, dim = feats.shape
        s, e = knn_shard_bounds(n, dim, world)[rank]
        labels, mat = sharded_pseudo_labels(
            torch.from_numpy(feats[s:e]), n, _jaccard(), _cluster,
            return_dist=True)
        out[rank] = dict(
            labels=labels,
            rows=(s, e),
            mat=None if mat is None else (mat.indptr, mat.indices,
                                          mat.data))
    finally:
        torch_dist.destroy_process_group()


def _run(world: int, n: int, block: int = BLOCK):
    feats = _feats(n)
    with _threads(block):
        ref = _jaccard()(torch.from_numpy(feats))
        ref_labels = _cluster(ref)
        out = mp.Manager().dict()
        mp.spawn(_worker, args=(world, free_port(), feats, block, out),
                 nprocs=world)
        return ref, ref_labels, dict(out)


def _check(ref, ref_labels, out, world):
    assert ref_labels.max() >= 5  # a real clustering, not one blob
    for rank in range(world):
        np.testing.assert_array_equal(out[rank]['labels'], ref_labels)
    indptr, indices, data = out[0]['mat']
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)  # bit for bit
    assert all(out[r]['mat'] is None for r in range(1, world))


def test_shard_bounds():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(1000, 3, 128) == [(0, 384), (384, 640), (640, 1000)]
    assert shard_bounds(100, 4, 128) == [(0, 0), (0, 0), (0, 100),
                                         (100, 100)]


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_sharded_labels_equal_one_process_blas(world):
    # N * D >= faiss's BLAS threshold: the blocked-product path
    n = 2500
    assert n * 64 >= faiss.cvar.distance_compute_blas_threshold
    ref, ref_labels, out = _run(world, n)
    _check(ref, ref_labels, out, world)
    cuts = [out[r]['rows'] for r in range(world)]
    assert cuts[0][0] == 0 and cuts[-1][1] == n
    assert all(s % BLOCK == 0 for s, _ in cuts)


@pytest.mark.slow
def test_sharded_labels_equal_one_process_per_pair_path():
    # below the BLAS threshold: no alignment, uneven blocks
    n = 1001
    assert n * 64 < faiss.cvar.distance_compute_blas_threshold
    ref, ref_labels, out = _run(3, n)
    _check(ref, ref_labels, out, 3)
    assert [out[r]['rows'] for r in range(3)] == shard_bounds(n, 3)


@pytest.mark.slow
def test_sharded_empty_rank():
    # N < W * block: one rank owns no row and the result is still exact
    ref, ref_labels, out = _run(2, 2100, block=2048)
    assert out[1]['rows'][1] - out[1]['rows'][0] in (0, 2100 - 2048)
    _check(ref, ref_labels, out, 2)
