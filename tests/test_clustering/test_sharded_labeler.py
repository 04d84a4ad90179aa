# Copyright (c) mmreid_usl contributors. All rights reserved.
"""PseudoLabeler(sharded='auto') and the PseudoLabelHook's labelling step:
with 2 gloo processes the ranks label together (the sharded path) and get
the one-process labels; the labellings without a sharded path (data
fraction, true ids) stay on rank 0 and give the one-process labels too."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from dist_spawn import spawn
from free_port import free_port
from test_sharded import BLOCK, _feats, _setup_threads, _threads

from mmreid_usl.clustering import (InfomapClusterer, LabelingContext,
                                   PseudoLabeler, SourceAwareJaccardDistance)
from mmreid_usl.engine.hooks import PseudoLabelHook

faiss = pytest.importorskip('faiss')

N = 2500  # N * D >= faiss's BLAS threshold with D = 64: the blocked path


def _labeler(**kwargs) -> PseudoLabeler:
    return PseudoLabeler(distance=dict(type='JaccardDistance', k1=20, k2=6),
                         clusterer=dict(type='DBSCANClusterer',
                                        eps=0.6,
                                        min_samples=4),
                         knn_threads=1,
                         **kwargs)


def _context(feats: np.ndarray) -> LabelingContext:
    n = len(feats)
    return LabelingContext(features=torch.from_numpy(feats),
                           camids=torch.arange(n) % 4,
                           true_ids=np.arange(n) // 16)


def _worker(rank: int, world: int, port: int, feats: np.ndarray,
            out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    _setup_threads(BLOCK)
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        hook = PseudoLabelHook(labeler=_labeler())
        context = _context(feats)
        labels, source, output = hook.run_labeler(context, 'pseudo')
        frac_hook = PseudoLabelHook(labeler=_labeler(fraction=0.5))
        frac, _, frac_out = frac_hook.run_labeler(context, 'pseudo')
        gt, gt_source, _ = hook.run_labeler(context, 'gt')
        out[rank] = dict(labels=labels.numpy(),
                         source=source,
                         stages=sorted(output.timing),
                         frac=frac.numpy(),
                         frac_alone=frac_out is None,
                         gt=gt.numpy(),
                         gt_source=gt_source)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_label_together_and_equal_one_process():
    feats = _feats(N)
    with _threads(BLOCK):
        ref = _labeler()(torch.from_numpy(feats)).labels.numpy()
        ctx = _context(feats)
        ref_frac = _labeler(fraction=0.5).label(ctx).labels
    assert ref.max() >= 5  # a real clustering, not one blob
    out = mp.Manager().dict()
    spawn(_worker, args=(2, free_port(), feats, out), nprocs=2)
    for rank in range(2):
        got = out[rank]
        np.testing.assert_array_equal(got['labels'], ref)
        assert got['source'] == 'pseudo'
        # the sharded stages ran on every rank
        assert {'knn_s', 'jaccard_rows_s',
                'cluster_time'} <= set(got['stages'])
        np.testing.assert_array_equal(got['frac'], ref_frac)
        assert got['frac_alone'] == (rank != 0)  # rank 0 labelled alone
        np.testing.assert_array_equal(got['gt'], np.arange(N) // 16)
        assert got['gt_source'] == 'gt'


class _TwoRanks(LabelingContext):
    """A context that reports two ranks without a process group."""

    @property
    def world_size(self) -> int:
        return 2


def test_sharded_modes_and_fallback_reasons():
    feats = torch.nn.functional.normalize(torch.randn(50, 8), dim=1)
    two = _TwoRanks(features=feats)
    assert _labeler().sharded_fallback(two) is None
    assert _labeler().uses_sharded(two)
    assert _labeler().sharded_fallback(LabelingContext(features=feats)) == \
        'one process'
    assert _labeler(sharded=False).sharded_fallback(two) == 'sharded=False'
    assert 'gt' in _labeler().sharded_fallback(two, 'gt')
    assert 'fraction' in _labeler(fraction=0.5).sharded_fallback(two)
    oracle = PseudoLabeler(clusterer=dict(type='OracleClusterer'))
    assert 'oracle' in oracle.sharded_fallback(two)
    bf16 = PseudoLabeler(
        distance=dict(type='JaccardDistance', knn_precision='bf16'))
    assert 'bf16' in bf16.sharded_fallback(two)
    torch_knn = PseudoLabeler(
        distance=dict(type='JaccardDistance', knn_backend='torch'))
    assert 'torch' in torch_knn.sharded_fallback(two)
    # an explicit True shards the torch backend too
    forced = PseudoLabeler(distance=dict(type='JaccardDistance',
                                         knn_backend='torch'),
                           sharded=True)
    assert forced.sharded_fallback(two) is None
    # an approximate kNN has no sharded path; forcing one is an error
    hnsw = dict(type='JaccardDistance', knn_backend='hnsw')
    assert 'approximate (hnsw)' in PseudoLabeler(
        distance=hnsw).sharded_fallback(two)
    with pytest.raises(ValueError, match='approximate'):
        PseudoLabeler(distance=hnsw, sharded=True)
    source_aware = PseudoLabeler(distance=dict(
        type='SourceAwareJaccardDistance'))
    assert isinstance(source_aware.distance, SourceAwareJaccardDistance)
    assert 'SourceAwareJaccardDistance' in source_aware.sharded_fallback(two)
    with pytest.raises(ValueError, match='sharded=True'):
        PseudoLabeler(distance=None,
                      clusterer=dict(type=InfomapClusterer.__name__),
                      sharded=True)
    with pytest.raises(ValueError, match='sharded must be'):
        PseudoLabeler(sharded='yes')
    with pytest.raises(ValueError, match='sharded must be'):
        PseudoLabeler(sharded=1)
    # a string from a config (not the interned literal) is accepted
    assert PseudoLabeler(sharded=''.join(['au', 'to'])).uses_sharded(two)
    with pytest.raises(ValueError, match='knn_threads'):
        PseudoLabeler(knn_threads=0)


def test_knn_threads_restored_after_one_process_labelling():
    feats = torch.from_numpy(_feats(300))
    before = faiss.omp_get_max_threads()
    labeler = _labeler()
    labeler.knn_threads = before + 1
    assert labeler(feats).num_clusters >= 5
    assert faiss.omp_get_max_threads() == before
