# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Two CPU processes (gloo) see identical pseudo-labels, memory and weights."""
import glob
import json
import os
import os.path as osp
import sys

import pytest
import torch
from dist_spawn import spawn
from free_port import free_port

from mmreid_usl.engine.checkpointing import setup_runtime  # noqa: E402

# this process reads the checkpoints the trainings write (weights-only)
setup_runtime()

WORKER = osp.join(osp.dirname(osp.abspath(__file__)), 'dist_train_worker.py')


def _scalar_keys(work_dir):
    keys = set()
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        for line in open(path):
            keys |= set(json.loads(line))
    return keys


def _worker(rank, world, port, root, work, launcher):
    """``python dist_train_worker.py ROOT WORK LAUNCHER`` as rank ``rank`` of
    ``world`` with one thread (``OMP_NUM_THREADS=1``), in a worker process of
    :func:`spawn` (which has the package imported already). With the
    ``pytorch`` launcher, the environment that ``torch.distributed.run``
    gives each rank (``tools/dist_train.sh`` itself runs in
    test_train_test_smoke.py)."""
    import dist_train_worker
    if launcher == 'pytorch':
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                          GROUP_RANK='0', ROLE_RANK=str(rank),
                          ROLE_WORLD_SIZE=str(world),
                          MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        import faiss
        faiss.omp_set_num_threads(1)
    except ImportError:  # the package's kNN falls back to torch
        pass
    sys.argv = [WORKER, root, work, launcher]
    dist_train_worker.main()


@pytest.fixture(scope='module')
def two_process_run(tiny_reid_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('dist2'))
    spawn(_worker, args=(2, free_port(), tiny_reid_root, work, 'pytorch'),
          nprocs=2)
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
        for key in ('labels', 'centroids', 'camids'):
            assert torch.equal(res0[key], res1[key]), key
        for key in ('num_clusters', 'num_outliers', 'epoch', 'labels_from'):
            assert res0[key] == res1[key], key
        # Cluster Contrast's memory reads the centroids alone: the ranks
        # labelled from their row blocks, no (N, D) bank was gathered
        assert not res0['banks_gathered'] and res0['bank'] is None
        assert torch.equal(res0['labels'], labels)
        seen0 = {i for b in r0['batches'] for i in b}
        seen1 = {i for b in r1['batches'] for i in b}
        assert seen0 != seen1


@pytest.mark.slow
def test_logs_match_single_process_run(two_process_run, tiny_reid_root,
                                       tmp_path):
    work = str(tmp_path)
    spawn(_worker, args=(1, None, tiny_reid_root, work, 'none'), nprocs=1)
    assert _scalar_keys(work) == _scalar_keys(two_process_run)
    assert 'pseudo_label/num_clusters' in _scalar_keys(work)
    # epoch 0 clusters the initial model's features: the 2-process run's
    # sharded labelling (both with OMP_NUM_THREADS=1) gives the same labels
    first = [
        torch.load(osp.join(w, 'rank0_epoch0.pth'))['labels']
        for w in (work, two_process_run)
    ]
    assert torch.equal(first[0], first[1])
    # and the centroids from the blocks' all-reduced sums are those of the
    # one process's gathered bank, bit for bit
    results = [
        torch.load(osp.join(w, 'rank0_epoch0.pth'))['result']
        for w in (work, two_process_run)
    ]
    assert results[0]['banks_gathered'] and results[0]['bank'] is not None
    assert torch.equal(results[0]['centroids'], results[1]['centroids'])
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
        assert f'Pseudo-labels of epoch {epoch}: the feature banks stayed ' \
            'in 2 row blocks (no all-gather).' in text
