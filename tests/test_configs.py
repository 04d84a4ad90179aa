# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Every shipped config parses, builds its parts and keeps the contract."""
import glob
import os.path as osp
from contextlib import contextmanager

import pytest
import torch
from mmengine.config import Config

from mmreid_usl.registry import (DATA_SAMPLERS, HOOKS, LOOPS, MODELS,
                                 TASK_UTILS, TRANSFORMS)
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=True)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    if '_base_' not in p)


#: torch.nn.init's random initialisers (what the layers' reset_parameters
#: call), skipped by :func:`_no_random_init`.
_RANDOM_INITS = ('uniform_', 'normal_', 'trunc_normal_', 'kaiming_uniform_',
                 'kaiming_normal_', 'xavier_uniform_', 'xavier_normal_',
                 'orthogonal_')


@contextmanager
def _no_random_init():
    """Build modules with their weights left as allocated (torch.empty)."""
    saved = {name: getattr(torch.nn.init, name) for name in _RANDOM_INITS}
    try:
        for name in _RANDOM_INITS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kw: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def _pipelines(cfg):
    for key in ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
                'test_dataloader'):
        if cfg.get(key):
            yield cfg[key]['dataset']['pipeline']


def _build_hook(cfg):
    hook = HOOKS.build(cfg)
    assert hook is not None, cfg
    return hook


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmreid_usl'
    # every constructor runs; init_cfg (downloads) is not run, nor the
    # random initialisation of the layers (most of the time of an R50
    # build, and not what this test checks)
    with _no_random_init():
        model = MODELS.build(cfg.model)
    # the sources the model declares exist (raises otherwise)
    model.check_contract()
    for pipeline in _pipelines(cfg):
        for transform in pipeline:
            assert TRANSFORMS.build(transform) is not None, transform
    hooks = {
        name: _build_hook(hook_cfg)
        for name, hook_cfg in cfg.default_hooks.items()
    }
    for hook_cfg in cfg.get('custom_hooks', []):
        _build_hook(hook_cfg)
    # a pseudo-label model is labelled by the hook; a 'gt' model may do
    # without it (its labels are the dataset's true ids)
    if model.labels_from == 'pseudo':
        assert 'pseudo_label' in hooks, 'unsupervised config without a hook'
        assert 'cluster_dataloader' in cfg
    # a model with a momentum encoder gets it updated and evaluated
    if 'momentum' in model.encoder_names:
        assert cfg.default_hooks.momentum_update.type == 'MomentumUpdateHook'
        assert cfg.val_cfg.type == 'MomentumValLoop'
        assert LOOPS.get('MomentumValLoop') is not None
    sampler = cfg.train_dataloader.sampler
    assert DATA_SAMPLERS.get(sampler.type) is not None, sampler.type
    if sampler.type == 'PseudoIdentitySampler':
        length = sampler.get('samples_per_epoch')
        if isinstance(length, int):
            assert length % cfg.train_dataloader.batch_size == 0
        else:  # None / 'dataset' / 'clusters': the sampler's own length
            assert length in (None, 'dataset', 'clusters'), length
            # incomplete last batches are dropped (Theory's DataLoader)
            assert cfg.train_dataloader.get('drop_last', False), path
        assert cfg.train_dataloader.batch_size % sampler.num_instances == 0
    # nothing outside the repository (in any value: the dict that
    # cfg.pretty_text formats, without the formatting, which took half of
    # this test's time)
    assert 'shared/' not in repr(cfg.to_dict())


def test_ground_truth_switch_of_the_cuhk03_config():
    """The supervised upper bound is one --cfg-options switch."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/cluster_contrast/'
                 'cluster-contrast_mbv2_cuhk03.py'))
    cfg.merge_from_dict({'model.labels_from': 'gt'})
    model = MODELS.build(cfg.model)
    assert model.labels_from == 'gt'
    assert cfg.model.encoder.backbone.init_cfg.checkpoint == \
        'torchvision://mobilenet_v2'


def test_paper_defaults_of_cluster_contrast_market():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/cluster_contrast/'
                 'cluster-contrast_r50_market.py'))
    assert cfg.model.encoder.backbone.strides == (1, 2, 2, 1)
    assert cfg.model.encoder.backbone.init_cfg.checkpoint == \
        'torchvision://resnet50'
    assert cfg.model.loss_cluster.temperature == 0.05
    assert cfg.model.memory.old_weight == 0.1
    labeler = TASK_UTILS.build(cfg.default_hooks.pseudo_label.labeler)
    assert (labeler.distance.k1, labeler.distance.k2) == (30, 6)
    assert (labeler.clusterer.eps, labeler.clusterer.min_samples) == (0.6, 4)
    assert cfg.optim_wrapper.optimizer.lr == 3.5e-4
    assert cfg.train_cfg.max_epochs == 50
    # 4 GPUs x 64 = 256 = 16 ids x 16 instances, 200 iterations
    assert cfg.train_dataloader.batch_size * 4 == 256
    assert cfg.train_dataloader.sampler.num_instances == 16
    assert cfg.train_dataloader.sampler.samples_per_epoch == 200 * 64


def test_widths_follow_the_backbone():
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/ice/ice_mbv2_cuhk03.py'))
    model = MODELS.build(cfg.model)
    assert model.encoder.feat_dim == 1280
    assert model.proxy_memory.feat_dim == 1280
