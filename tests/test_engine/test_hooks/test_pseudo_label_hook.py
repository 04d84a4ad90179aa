# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.runner import Runner

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
    assert {'num_clusters', 'num_outliers', 'nmi', 'ari'} <= set(last)
    assert last['num_clusters'] > 0
    # model buffer, sampler and memory agree with each other
    assert model.pseudo_labels.shape == (n, )
    np.testing.assert_array_equal(model.pseudo_labels.numpy(),
                                  sampler.labels)
    assert model.memory.num_clusters == last['num_clusters']
    assert int(model.pseudo_labels.max()) + 1 == last['num_clusters']
    assert (model.pseudo_labels == -1).sum() == last['num_outliers']
    # logged as scalars (log line + visualizer)
    assert runner.message_hub.get_scalar(
        'train/pseudo_label/num_clusters').current() == last['num_clusters']
    scalars = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    assert 'pseudo_label/nmi' in open(scalars).read()


def test_zero_clusters_warn_and_skip_epoch(tiny_reid_root, tmp_path,
                                           make_tiny_cfg):
    # no image has 1000 neighbours: every image is an outlier
    cfg = make_tiny_cfg(
        tiny_reid_root, str(tmp_path), max_epochs=1, min_samples=1000)
    runner = Runner.from_cfg(cfg)
    with pytest.warns(UserWarning, match='zero clusters'):
        runner.train()
    assert runner.iter == 0  # no training iteration, no crash
    assert runner.model.memory.num_clusters == 0
    assert _hook(runner).history[0]['num_clusters'] == 0


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
    cfg = make_tiny_cfg(tiny_reid_root, work, max_epochs=2,
                        interval=interval)
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
        np.testing.assert_array_equal(
            resumed.train_dataloader.sampler.labels, saved_labels.numpy())


def test_sparse_distance_keeps_only_pairs_dbscan_can_use():
    hook = PseudoLabelHook(
        distance=dict(type='JaccardDistance', k1=10, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.5, min_samples=2))
    assert 0.5 < hook.distance.max_distance <= 0.502
    explicit = PseudoLabelHook(
        distance=dict(type='JaccardDistance', max_distance=0.8),
        clusterer=dict(type='DBSCANClusterer', eps=0.5))
    assert explicit.distance.max_distance == 0.8  # user's choice is kept
