# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Two CPU processes (gloo) see identical pseudo-labels, memory and weights."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from dist_spawn import spawn
from free_port import free_port

from mmreid_usl.engine.checkpointing import setup_runtime  # noqa: E402

# this process reads the checkpoints the trainings write (weights-only)
setup_runtime()

WORKER = osp.join(osp.dirname(osp.abspath(__file__)), 'dist_train_worker.py')


def _run(args, env_extra=None, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1', **(env_extra or {}))
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _scalar_keys(work_dir):
    keys = set()
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        for line in open(path):
            keys |= set(json.loads(line))
    return keys


@pytest.fixture(scope='module')
def two_process_run(tiny_reid_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('dist2'))
    _run([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
        f'--master_port={free_port()}', WORKER, tiny_reid_root, work,
        'pytorch'
    ])
    return work


@pytest.mark.slow
def test_ranks_hold_identical_state(two_process_run):
    for epoch in (0, 1):
        r0 = torch.load(osp.join(two_process_run, f'rank0_epoch{epoch}.pth'))
        r1 = torch.load(osp.join(two_process_run, f'rank1_epoch{epoch}.pth'))
        assert torch.equal(r0['labels'], r1['labels'])
        assert r0['memory'].shape[0] > 0
        assert torch.equal(r0['memory'], r1['memory'])  # bit-identical
        for key in r0['params']:
            assert torch.equal(r0['params'][key], r1['params'][key]), key
        # BN running statistics: each rank normalised different images, and
        # SyncNormBuffersHook averaged them after the epoch
        assert len(r0['bn_stats']) > 0
        for b0, b1 in zip(r0['bn_stats'], r1['bn_stats']):
            assert torch.equal(b0, b1)
        # each rank trained on its own whole-identity blocks of K=4
        labels = r0['labels']
        for batches in (r0['batches'], r1['batches']):
            assert len(batches) == 2  # fixed iterations per epoch
            for batch in batches:
                blocks = torch.as_tensor(batch).view(-1, 4)
                assert (labels[blocks] >= 0).all()
                assert (labels[blocks] == labels[blocks][:, :1]).all()
        # every rank built the same PseudoLabelResult from the broadcast
        # labels and source; the labeller's inputs did not travel with it
        res0, res1 = r0['result'], r1['result']
        assert res0['fields'] == res1['fields']
        assert 'reference_features' not in res0['fields']
        assert res0['num_clusters'] > 0 and res0['epoch'] == epoch
        for key in ('labels', 'centroids', 'camids', 'bank'):
            assert torch.equal(res0[key], res1[key]), key
        for key in ('num_clusters', 'num_outliers', 'epoch', 'labels_from'):
            assert res0[key] == res1[key], key
        assert torch.equal(res0['labels'], labels)
        seen0 = {i for b in r0['batches'] for i in b}
        seen1 = {i for b in r1['batches'] for i in b}
        assert seen0 != seen1


def _single_process_worker(rank, root, work):
    """``python dist_train_worker.py ROOT WORK none`` with one thread (as
    ``OMP_NUM_THREADS=1``), in a worker process of :func:`spawn` (which has
    the package imported already)."""
    import dist_train_worker
    torch.set_num_threads(1)
    try:
        import faiss
        faiss.omp_set_num_threads(1)
    except ImportError:  # the package's kNN falls back to torch
        pass
    sys.argv = [WORKER, root, work, 'none']
    dist_train_worker.main()


@pytest.mark.slow
def test_logs_match_single_process_run(two_process_run, tiny_reid_root,
                                       tmp_path):
    work = str(tmp_path)
    spawn(_single_process_worker, args=(tiny_reid_root, work), nprocs=1)
    assert _scalar_keys(work) == _scalar_keys(two_process_run)
    assert 'pseudo_label/num_clusters' in _scalar_keys(work)
    # epoch 0 clusters the initial model's features: the 2-process run's
    # sharded labelling (both with OMP_NUM_THREADS=1) gives the same labels
    first = [
        torch.load(osp.join(w, 'rank0_epoch0.pth'))['labels']
        for w in (work, two_process_run)
    ]
    assert torch.equal(first[0], first[1])
    one = torch.load(osp.join(work, 'rank0_epoch1.pth'))
    two = torch.load(osp.join(two_process_run, 'rank0_epoch1.pth'))
    assert one['labels'].shape == two['labels'].shape
    assert one['memory'].shape[1] == two['memory'].shape[1]


@pytest.mark.slow
def test_rank_consistency_hook_logs_identical_state(two_process_run):
    """The worker registers ``RankConsistencyHook`` (raises on mismatch):
    its line is in rank 0's log for both epochs."""
    logs = glob.glob(osp.join(two_process_run, '*', '*.log'))
    text = ''.join(open(p).read() for p in logs)
    for epoch in (1, 2):
        assert f'rank consistency (epoch {epoch}):' in text
    assert 'identical on 2 ranks' in text
    # the labeler's default (sharded='auto') shards over the 2 ranks
    for epoch in (0, 1):
        assert f'Pseudo-labels of epoch {epoch} computed by 2 ranks ' \
            'together (sharded).' in text
