# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Every shipped config parses and builds its model, pipelines and hooks."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid_usl.registry import HOOKS, MODELS, TASK_UTILS, TRANSFORMS
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=True)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    if '_base_' not in p)


def _pipelines(cfg):
    for key in ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
                'test_dataloader'):
        if cfg.get(key):
            yield cfg[key]['dataset']['pipeline']


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmreid_usl'
    model = MODELS.build(cfg.model)  # init_cfg (downloads) is not run
    assert hasattr(model, 'set_pseudo_labels')
    for pipeline in _pipelines(cfg):
        for transform in pipeline:
            TRANSFORMS.build(transform)
    hook = cfg.default_hooks.pseudo_label
    assert hook.type == 'PseudoLabelHook'
    TASK_UTILS.build(hook.clusterer)
    HOOKS.get(hook.type)
    sampler = cfg.train_dataloader.sampler
    assert sampler.type == 'PseudoIdentitySampler'
    assert sampler.samples_per_epoch % cfg.train_dataloader.batch_size == 0
    assert cfg.train_dataloader.batch_size % sampler.num_instances == 0


def test_paper_defaults_of_cluster_contrast_market():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/cluster_contrast/'
                 'cluster-contrast_r50_market.py'))
    assert cfg.model.encoder.backbone.strides == (1, 2, 2, 1)
    assert cfg.model.encoder.backbone.init_cfg.checkpoint == \
        'torchvision://resnet50'
    assert cfg.model.memory.temperature == 0.05
    hook = cfg.default_hooks.pseudo_label
    assert (hook.distance.k1, hook.distance.k2) == (30, 6)
    assert (hook.clusterer.eps, hook.clusterer.min_samples) == (0.6, 4)
    assert cfg.optim_wrapper.optimizer.lr == 3.5e-4
    assert cfg.train_cfg.max_epochs == 50
    # 4 GPUs x 64 = 256 = 16 ids x 16 instances, 200 iterations
    assert cfg.train_dataloader.batch_size * 4 == 256
    assert cfg.train_dataloader.sampler.num_instances == 16
    assert cfg.train_dataloader.sampler.samples_per_epoch == 200 * 64
