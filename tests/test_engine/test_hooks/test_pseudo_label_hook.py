# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

from mmreid_usl.clustering import BaseClusterer
from mmreid_usl.engine.hooks import PseudoLabelHook
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=False)


def _hook(runner):
    return next(h for h in runner.hooks if isinstance(h, PseudoLabelHook))


def test_hook_sets_labels_in_model_and_sampler(tiny_reid_root, tmp_path,
                                               make_tiny_cfg):
    runner = Runner.from_cfg(
        make_tiny_cfg(tiny_reid_root, str(tmp_path), max_epochs=2))
    runner.train()
    model, hook = runner.model, _hook(runner)
    sampler = runner.train_dataloader.sampler
    n = len(runner.train_dataloader.dataset)
    # one clustering per epoch, with diagnostics against the true ids
    assert [h['epoch'] for h in hook.history] == [0, 1]
    last = hook.history[-1]
    assert {
        'num_clusters', 'num_outliers', 'nmi', 'ari', 'pair_precision',
        'pair_recall', 'cross_camera_recall', 'single_camera_clusters'
    } <= set(last)
    assert last['num_clusters'] > 0
    assert 0.0 <= last['single_camera_clusters'] <= 1.0
    # model buffer, sampler and memory agree with each other
    assert model.pseudo_labels.shape == (n, )
    np.testing.assert_array_equal(model.pseudo_labels.numpy(), sampler.labels)
    assert model.memory.num_clusters == last['num_clusters']
    assert int(model.pseudo_labels.max()) + 1 == last['num_clusters']
    assert (model.pseudo_labels == -1).sum() == last['num_outliers']
    # logged as scalars (log line + visualizer)
    assert runner.message_hub.get_scalar(
        'train/pseudo_label/num_clusters').current() == last['num_clusters']
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    assert 'pseudo_label/nmi' in open(scalars).read()


def test_degenerate_clustering_stops_or_skips(tiny_reid_root, tmp_path,
                                              make_tiny_cfg):
    # no image has 1000 neighbours: every image is an outlier
    cfg = make_tiny_cfg(tiny_reid_root,
                        str(tmp_path),
                        max_epochs=1,
                        min_samples=1000)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='min_samples=1000.*found 0'):
        runner.train()
    assert runner.iter == 0
    # explicitly skipped: the epoch has no training iteration, no crash
    cfg.default_hooks.pseudo_label.labeler.on_degenerate = 'skip'
    cfg.work_dir = str(tmp_path / 'skip')
    runner = Runner.from_cfg(cfg)
    with pytest.warns(UserWarning, match='Skipping'):
        runner.train()
    assert runner.iter == 0
    assert runner.model.memory.num_clusters == 0
    assert _hook(runner).history[0]['num_clusters'] == 0


def test_ground_truth_switch_trains_on_true_ids(tiny_reid_root, tmp_path,
                                                make_tiny_cfg):
    """model.labels_from='gt': same hook, sampler and memory, true ids."""
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path), max_epochs=1)
    cfg.model.labels_from = 'gt'
    runner = Runner.from_cfg(cfg)
    runner.train()
    pids = runner.train_dataloader.dataset.get_pids()
    np.testing.assert_array_equal(runner.model.pseudo_labels.numpy(), pids)
    np.testing.assert_array_equal(runner.train_dataloader.sampler.labels, pids)
    assert runner.model.memory.num_clusters == len(np.unique(pids))
    assert runner.iter == 3
    history = _hook(runner).history[0]
    assert history['num_outliers'] == 0 and 'nmi' not in history


def test_model_without_the_declared_bank_is_rejected(tiny_reid_root, tmp_path,
                                                     make_tiny_cfg):
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path), max_epochs=1)
    cfg.model.cluster_encoder = 'momentum'  # a ClusterContrast has none
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match="'momentum' is used as a"):
        runner.train()


def test_mismatched_cluster_dataloader_errors(tiny_reid_root, tmp_path,
                                              make_tiny_cfg):
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path), max_epochs=1)
    cfg.cluster_dataloader.dataset.split = 'query'
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='same training split'):
        runner.train()


def test_missing_cluster_dataloader_errors(tiny_reid_root, tmp_path,
                                           make_tiny_cfg):
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path), max_epochs=1)
    cfg.pop('cluster_dataloader')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='cluster_dataloader'):
        runner.train()


@pytest.mark.parametrize('interval', [1, 2])
def test_resume_restores_labels_and_memory(tiny_reid_root, tmp_path,
                                           make_tiny_cfg, interval):
    work = str(tmp_path / 'run')
    runner = Runner.from_cfg(
        make_tiny_cfg(tiny_reid_root, work, max_epochs=1, interval=interval))
    runner.train()
    ckpt_path = osp.join(work, 'epoch_1.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu')  # weights_only=True
    saved_labels = ckpt['state_dict']['pseudo_labels']
    saved_memory = ckpt['state_dict']['memory.features']

    # resume for one more epoch; record the state right after loading
    cfg = make_tiny_cfg(tiny_reid_root, work, max_epochs=2, interval=interval)
    cfg.resume, cfg.load_from = True, ckpt_path
    resumed = Runner.from_cfg(cfg)
    seen = {}

    def spy(runner):  # runs before PseudoLabelHook (higher priority)
        seen['memory'] = runner.model.memory.features.clone()
        seen['labels'] = runner.model.pseudo_labels.clone()

    from mmengine.hooks import Hook
    hook = Hook()
    hook.before_train_epoch = spy
    resumed.register_hook(hook, priority='VERY_HIGH')
    resumed.train()
    assert resumed.epoch == 2
    torch.testing.assert_close(seen['memory'], saved_memory)
    torch.testing.assert_close(seen['labels'], saved_labels)
    history = _hook(resumed).history
    if interval == 1:  # epoch 1 is re-clustered
        assert [h['epoch'] for h in history] == [1]
    else:  # epoch 1 keeps the checkpoint's labels, restored to the sampler
        assert history == []
        np.testing.assert_array_equal(resumed.train_dataloader.sampler.labels,
                                      saved_labels.numpy())


class _EpsOnce(BaseClusterer):
    """A clusterer with state: eps fixed at its first call (like GDS)."""

    def __init__(self):
        self.eps = None
        self.calls = 0

    def cluster(self, distance, context):
        from mmreid_usl.clustering import DBSCANClusterer
        self.calls += 1
        if self.eps is None:
            self.eps = 0.6
        return DBSCANClusterer(eps=self.eps, min_samples=2)(distance,
                                                             context)

    def state_dict(self):
        return dict(eps=self.eps)

    def load_state_dict(self, state):
        self.eps = state['eps']


def test_labeler_state_is_checkpointed_and_restored(tiny_reid_root, tmp_path,
                                                    make_tiny_cfg):
    work = str(tmp_path / 'run')
    cfg = make_tiny_cfg(tiny_reid_root, work, max_epochs=1)
    runner = Runner.from_cfg(cfg)
    _hook(runner).labeler.clusterer = _EpsOnce()
    runner.train()
    ckpt = torch.load(osp.join(work, 'epoch_1.pth'), map_location='cpu')
    assert ckpt['pseudo_labeler'] == dict(clusterer=dict(eps=0.6))
    ckpt['pseudo_labeler']['clusterer']['eps'] = 0.55
    torch.save(ckpt, osp.join(work, 'edited.pth'))
    cfg = make_tiny_cfg(tiny_reid_root, work, max_epochs=1)
    cfg.resume, cfg.load_from = True, osp.join(work, 'edited.pth')
    resumed = Runner.from_cfg(cfg)
    clusterer = _EpsOnce()
    _hook(resumed).labeler.clusterer = clusterer
    resumed.load_or_resume()
    assert clusterer.eps == 0.55
