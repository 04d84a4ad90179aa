# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Labelling without the (N, D) banks (issue 26): row redistribution to the
contiguous blocks, cluster means from all-reduced block sums, and the
PseudoLabelHook's block path, with 2 and 4 gloo processes against one
process.

The hook runs on a stand-in model whose "encoder" returns the synthetic
features given as inputs (``student``) or their negation (``momentum``),
so the one-process reference is the labeler on the same features."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn as nn
from dist_spawn import spawn
from free_port import free_port
from mmengine.dataset import DefaultSampler
from test_sharded import BLOCK, _feats, _setup_threads, _threads
from torch.utils.data import DataLoader

from mmreid_usl.clustering import LabelingContext, PseudoLabeler
from mmreid_usl.clustering.sharded import (knn_shard_bounds, redistribute_rows,
                                           shard_bounds, sharded_cluster_means)
from mmreid_usl.engine.hooks import PseudoLabelHook
from mmreid_usl.engine.hooks import pseudo_label_hook
from mmreid_usl.structures import PseudoLabelResult, cluster_means

faiss = pytest.importorskip('faiss')

N = 1200  # N * D above faiss's BLAS threshold: the 128-row blocks
CAMS = 4


def _labeler() -> PseudoLabeler:
    return PseudoLabeler(distance=dict(type='JaccardDistance', k1=20, k2=6),
                         clusterer=dict(type='DBSCANClusterer',
                                        eps=0.6,
                                        min_samples=4),
                         knn_threads=1)


class _Dataset:
    """Sample ``i`` is row ``i`` of the features, camera ``i % 4``."""

    def __init__(self, feats: np.ndarray):
        self.feats = torch.from_numpy(feats)

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.feats[i], idx=i)

    def get_camids(self) -> np.ndarray:
        return np.arange(len(self)) % CAMS


def _collate(batch):
    return dict(
        inputs=torch.stack([b['inputs'] for b in batch]),
        data_samples=[SimpleNamespace(sample_idx=b['idx']) for b in batch])


class _Model(nn.Module):
    """The PseudoLabelHook's contract, with the inputs as features."""

    labels_from = 'pseudo'
    cluster_encoder = 'student'
    pseudo_label_banks = ('student', 'momentum')

    def __init__(self, needs_bank_rows: bool):
        super().__init__()
        self.needs_bank_rows = needs_bank_rows
        self.weight = nn.Parameter(torch.zeros(1))

    def data_preprocessor(self, data: dict, training: bool) -> dict:
        return data

    def extract_feat(self, inputs: torch.Tensor, encoder: str) -> torch.Tensor:
        return inputs if encoder == 'student' else -inputs


class _Sink:
    """The runner's message hub and visualizer (nothing recorded)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _runner(feats: np.ndarray, needs_bank_rows: bool):
    dataset = _Dataset(feats)
    loader = DataLoader(dataset,
                        batch_size=64,
                        sampler=DefaultSampler(dataset,
                                               shuffle=False,
                                               round_up=False),
                        collate_fn=_collate)
    runner = SimpleNamespace(model=_Model(needs_bank_rows),
                             epoch=0,
                             train_dataloader=SimpleNamespace(dataset=dataset),
                             message_hub=_Sink(),
                             visualizer=_Sink())
    return runner, loader


def _hook_label(feats: np.ndarray, needs_bank_rows: bool) -> dict:
    """``hook.label`` on this rank; what it held and built."""
    runner, loader = _runner(feats, needs_bank_rows)
    hook = PseudoLabelHook(labeler=_labeler(), dataloader=loader)
    seen = dict(contexts=[], gathers=[])
    label = hook.labeler.label

    def spy_label(context, labels_from='pseudo'):
        seen['contexts'].append((tuple(context.features.shape),
                                 context.row_block, context.num_samples))
        return label(context, labels_from)

    gather = pseudo_label_hook.all_gather_cat

    def spy_gather(t):
        seen['gathers'].append(tuple(t.shape))
        return gather(t)

    hook.labeler.label = spy_label
    pseudo_label_hook.all_gather_cat = spy_gather
    try:
        result = hook.label(runner)
    finally:
        pseudo_label_hook.all_gather_cat = gather
    return dict(labels=result.labels.numpy(),
                centroids=result.centroids.numpy(),
                momentum=result.centroids_of('momentum').numpy(),
                banks_gathered=result.banks_gathered,
                features={
                    k: v.numpy()
                    for k, v in result.features.items()
                },
                camids=result.camids.numpy(),
                contexts=seen['contexts'],
                gathers=seen['gathers'])


def _hook_refused(feats: np.ndarray):
    """``hook.label`` with a labeler that shards the empty probe of the
    device check but not the extracted blocks: the error text (every rank
    raises, none waits for rank 0)."""
    runner, loader = _runner(feats, needs_bank_rows=False)
    hook = PseudoLabelHook(labeler=_labeler(), dataloader=loader)
    real = hook.labeler.uses_sharded
    hook.labeler.uses_sharded = lambda context, labels_from='pseudo': (
        real(context, labels_from) and context.features.numel() == 0)
    try:
        hook.label(runner)
    except RuntimeError as err:
        return str(err)
    return None


def _worker(rank: int, worlds, ports: dict, feats: np.ndarray,
            labels: np.ndarray, out: dict) -> None:
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    for world in worlds:
        if rank >= world:
            continue
        os.environ['MASTER_PORT'] = str(ports[world])
        _setup_threads(BLOCK)
        torch_dist.init_process_group('gloo', rank=rank, world_size=world)
        try:
            got = {}
            # (a) rank r extracted r, r + W, ... (the sampler's shard);
            # a shuffled shard and uneven blocks with an empty one too
            t = torch.from_numpy(feats)
            bounds = knn_shard_bounds(len(feats), feats.shape[1], world)
            mine = torch.arange(rank, len(feats), world)
            got['block'] = redistribute_rows(t[mine], mine, bounds).numpy()
            got['bounds'] = bounds[rank]
            small = torch.arange(10 * 3, dtype=torch.float32).view(10, 3)
            order = torch.randperm(
                10, generator=torch.Generator().manual_seed(world))
            shard = order[rank::world]
            tiny = shard_bounds(10, world, 4)
            got['tiny'] = redistribute_rows(small[shard], shard, tiny).numpy()
            got['tiny_bounds'] = tiny[rank]
            # (b) block sums all-reduced = one process's means
            s, e = bounds[rank]
            lab = torch.from_numpy(labels)
            c = int(lab.max()) + 1
            got['means'] = sharded_cluster_means(t[s:e], lab[s:e], c).numpy()
            # the hook: from blocks, and with a model that reads rows
            got['hook'] = _hook_label(feats, needs_bank_rows=False)
            got['hook_rows'] = _hook_label(feats, needs_bank_rows=True)
            got['refused'] = _hook_refused(feats)
            out[(world, rank)] = got
        finally:
            torch_dist.destroy_process_group()


@pytest.fixture(scope='module')
def runs():
    """The reference (one process) and every rank's output of 2 and 4
    processes (one spawn of 4; ranks >= world sit a run out)."""
    feats = _feats(N)
    # what the extraction gives: the L2-normalised encoder outputs
    banks = {
        name: torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
        for name, x in (('student', feats), ('momentum', -feats))
    }
    with _threads(BLOCK):
        ref = _labeler()(banks,
                         cluster_encoder='student',
                         camids=torch.arange(N) % CAMS)
    assert ref.num_clusters >= 10
    out = mp.Manager().dict()
    worlds = (2, 4)
    spawn(_worker,
          args=(worlds, {
              w: free_port()
              for w in worlds
          }, feats, ref.labels.numpy(), out),
          nprocs=max(worlds))
    return feats, ref, dict(out)


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_rows_reach_their_contiguous_blocks(runs, world):
    feats, _, out = runs
    small = np.arange(30, dtype=np.float32).reshape(10, 3)
    covered = []
    for rank in range(world):
        s, e = out[(world, rank)]['bounds']
        np.testing.assert_array_equal(out[(world, rank)]['block'], feats[s:e])
        ts, te = out[(world, rank)]['tiny_bounds']
        np.testing.assert_array_equal(out[(world, rank)]['tiny'], small[ts:te])
        covered.append((ts, te))
    if world == 4:
        assert any(s == e for s, e in covered)  # a rank with no row


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_block_means_equal_one_process(runs, world):
    feats, ref, out = runs
    one = cluster_means(torch.from_numpy(feats), ref.labels,
                        ref.num_clusters).numpy()
    for rank in range(world):
        np.testing.assert_array_equal(out[(world, rank)]['means'], one)


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_hook_labels_from_blocks_without_the_banks(runs, world):
    feats, ref, out = runs
    for rank in range(world):
        got = out[(world, rank)]['hook']
        np.testing.assert_array_equal(got['labels'], ref.labels.numpy())
        np.testing.assert_array_equal(got['camids'], np.arange(N) % CAMS)
        # the one-process centroids, bit for bit, of both banks
        np.testing.assert_array_equal(got['centroids'], ref.centroids.numpy())
        np.testing.assert_array_equal(got['momentum'],
                                      ref.centroids_of('momentum').numpy())
        # no (N, D) tensor: no feature gather, the labeler saw the block,
        # the result holds no row
        assert got['gathers'] == []
        s, e = out[(world, rank)]['bounds']
        assert got['contexts'] == [((e - s, feats.shape[1]), (s, e), N)]
        assert not got['banks_gathered'] and got['features'] == {}


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_hook_gathers_the_banks_for_a_model_that_reads_rows(runs, world):
    feats, ref, out = runs
    for rank in range(world):
        got = out[(world, rank)]['hook_rows']
        np.testing.assert_array_equal(got['labels'], ref.labels.numpy())
        assert got['banks_gathered']
        for name in ('student', 'momentum'):
            np.testing.assert_array_equal(got['features'][name],
                                          ref.bank(name).numpy())
        np.testing.assert_array_equal(got['centroids'], ref.centroids.numpy())
        assert got['contexts'] == [((N, feats.shape[1]), None, None)]
        assert (N // world + 1, feats.shape[1]) in got['gathers'] or \
            (N // world, feats.shape[1]) in got['gathers']


@pytest.mark.slow
@pytest.mark.parametrize('world', [2, 4])
def test_hook_block_path_refused_on_every_rank(runs, world):
    _, _, out = runs
    for rank in range(world):
        assert 'gather_banks=True' in out[(world, rank)]['refused']


def test_cluster_means_do_not_depend_on_the_row_order():
    torch.manual_seed(0)
    feats = torch.nn.functional.normalize(torch.randn(3000, 96), dim=1)
    labels = torch.randint(-1, 40, (3000, ))
    means = cluster_means(feats, labels, 40)
    perm = torch.randperm(3000)
    assert torch.equal(cluster_means(feats[perm], labels[perm], 40), means)
    # the float64 mean rounded once to float32, up to the double rounding
    valid = labels >= 0
    exact = torch.zeros(40, 96, dtype=torch.float64).index_add_(
        0, labels[valid], feats[valid].double()) / torch.bincount(
            labels[valid], minlength=40).unsqueeze(1).double()
    torch.testing.assert_close(means, exact.float(), rtol=0, atol=1e-9)
    assert means.dtype == torch.float32
    assert cluster_means(feats.double(), labels, 40).dtype == torch.float64
    assert cluster_means(feats, labels, 0).shape == (0, 96)


def test_a_result_without_rows_names_the_fix():
    labels = torch.tensor([0, 0, 1, -1])
    centroids = torch.ones(2, 3)
    result = PseudoLabelResult(labels=labels,
                               num_clusters=2,
                               num_outliers=1,
                               centroids=centroids,
                               bank_centroids=dict(student=centroids,
                                                   momentum=-centroids),
                               banks_gathered=False)
    assert result.has_bank('momentum') and not result.has_bank('ema')
    assert torch.equal(result.centroids_of('momentum'), -centroids)
    with pytest.raises(RuntimeError, match='needs_bank_rows'):
        result.bank()
    with pytest.raises(RuntimeError, match='gather_banks=True'):
        result.bank('momentum')
    moved = result.to('cpu')
    assert not moved.banks_gathered and set(
        moved.bank_centroids) == {'student', 'momentum'}


def test_a_block_context_needs_the_sharded_path():
    feats = torch.nn.functional.normalize(torch.randn(40, 8), dim=1)
    context = LabelingContext(features=feats[:20],
                              row_block=(0, 20),
                              num_samples=40)
    with pytest.raises(ValueError, match='rows'):
        _labeler().label(context)


def test_gather_banks_option():
    with pytest.raises(ValueError, match='gather_banks'):
        PseudoLabelHook(gather_banks='never')
    hook = PseudoLabelHook(gather_banks=False)
    runner, _ = _runner(_feats(40), needs_bank_rows=False)
    with pytest.raises(ValueError, match='one process'):
        hook._labels_from_blocks(runner, runner.model)
    assert not PseudoLabelHook()._labels_from_blocks(runner, runner.model)
