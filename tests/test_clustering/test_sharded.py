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
from dist_spawn import spawn
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


#: The sharded runs, all in ONE spawn of max(world) processes (starting the
#: processes costs more than the runs): name -> (world, n, block). The
#: processes of rank >= world sit a run out.
RUNS = {
    'blas2': (2, 2500, BLOCK),  # N * D >= faiss's BLAS threshold
    'blas4': (4, 2500, BLOCK),
    'per_pair3': (3, 1001, BLOCK),  # below it: uneven blocks
    'empty_rank2': (2, 2100, 2048),  # N < W * block: rank 1 owns no row
}


def _worker(rank: int, runs: dict, ports: dict, out: dict) -> None:
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    for name, (world, n, block) in runs.items():
        if rank >= world:
            continue
        # a fresh process group of ``world`` ranks per run
        os.environ['MASTER_PORT'] = str(ports[name])
        _setup_threads(block)
        torch_dist.init_process_group('gloo', rank=rank, world_size=world)
        try:
            feats = _feats(n)
            s, e = knn_shard_bounds(n, feats.shape[1], world)[rank]
            labels, mat = sharded_pseudo_labels(
                torch.from_numpy(feats[s:e]), n, _jaccard(), _cluster,
                return_dist=True)
            out[(name, rank)] = dict(
                labels=labels,
                rows=(s, e),
                mat=None if mat is None else (mat.indptr, mat.indices,
                                              mat.data))
        finally:
            torch_dist.destroy_process_group()


@pytest.fixture(scope='module')
def sharded_runs():
    """{name: (ref, ref_labels, {rank: output})} of every run of
    :data:`RUNS`; a run whose processes failed has no entry (its test fails
    with the spawn's error)."""
    out = mp.Manager().dict()
    ports = {name: free_port() for name in RUNS}
    error = None
    try:
        spawn(_worker,
              args=(RUNS, ports, out),
              nprocs=max(world for world, _, _ in RUNS.values()))
    except Exception as exc:  # noqa: BLE001 - reported by each test
        error = exc
    out = dict(out)
    results, refs = {}, {}
    for name, (world, n, block) in RUNS.items():
        if not all((name, r) in out for r in range(world)):
            continue
        if (n, block) not in refs:  # the one-process reference
            with _threads(block):
                ref = _jaccard()(torch.from_numpy(_feats(n)))
                refs[n, block] = ref, _cluster(ref)
        results[name] = refs[n, block] + (
            {r: out[(name, r)] for r in range(world)}, )
    return results, error


def _run(sharded_runs, name):
    results, error = sharded_runs
    if name not in results:
        pytest.fail(f'the sharded run {name!r} did not finish: {error!r}')
    return results[name]


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
def test_sharded_labels_equal_one_process_blas(sharded_runs, world):
    # N * D >= faiss's BLAS threshold: the blocked-product path
    assert RUNS[f'blas{world}'] == (world, 2500, BLOCK)
    n = 2500
    assert n * 64 >= faiss.cvar.distance_compute_blas_threshold
    ref, ref_labels, out = _run(sharded_runs, f'blas{world}')
    _check(ref, ref_labels, out, world)
    cuts = [out[r]['rows'] for r in range(world)]
    assert cuts[0][0] == 0 and cuts[-1][1] == n
    assert all(s % BLOCK == 0 for s, _ in cuts)


@pytest.mark.slow
def test_sharded_labels_equal_one_process_per_pair_path(sharded_runs):
    # below the BLAS threshold: no alignment, uneven blocks
    assert RUNS['per_pair3'] == (3, 1001, BLOCK)
    n = 1001
    assert n * 64 < faiss.cvar.distance_compute_blas_threshold
    ref, ref_labels, out = _run(sharded_runs, 'per_pair3')
    _check(ref, ref_labels, out, 3)
    assert [out[r]['rows'] for r in range(3)] == shard_bounds(n, 3)


@pytest.mark.slow
def test_sharded_empty_rank(sharded_runs):
    # N < W * block: one rank owns no row and the result is still exact
    assert RUNS['empty_rank2'] == (2, 2100, 2048)
    ref, ref_labels, out = _run(sharded_runs, 'empty_rank2')
    assert out[1]['rows'][1] - out[1]['rows'][0] in (0, 2100 - 2048)
    _check(ref, ref_labels, out, 2)
