# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``dcmip_r50-code_market.py`` (the unofficial code) against
``dcmip_r50_market.py`` (the paper): the exact list of differences, each
in the README table, and the learning rate of the two stages."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper

from mmreid_usl.engine.hooks.optimizer_reset_hook import reset_optim_wrapper
from mmreid_usl.registry import HOOKS, PARAM_SCHEDULERS
from mmreid_usl.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DCMIP = osp.join(REPO, 'configs', 'dcmip')
LOADERS = ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
           'test_dataloader')

register_all_modules(init_default_scope=False)


def _cfg(name):
    return Config.fromfile(osp.join(DCMIP, name))


def _resize(size):
    return dict(
        type='Resize',
        scale=size[::-1],
        interpolation='bicubic',
        backend='pillow')


def _flatten(value, prefix=''):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f'{prefix}{key}.'))
        return out
    return {prefix[:-1]: value}


#: Every merged value of ``-code`` that differs from the paper config
#: (pipelines compared separately).
EXPECTED = {
    'custom_hooks': [dict(type='OptimizerResetHook', epochs=[40])],
    'model.bn_running_stats': 'first_group',
    'model.momentum_shuffle_bn': False,
    'model.loss_dcp.mode': 'hybrid',
    'model.loss_dcp.margin_index': 0,  # the default, written out
    'model.loss_mip.negative_mode': 'per_cluster',
    'model.ins_start_epoch': 40,
    'model.dcp_weight': 1.0,
    'model.mip_weight': 1.0,
    'model.momentum_reinit': 'until_mip',
    'model.mip_update_encoder': 'student',
    'param_scheduler': [
        dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True,
             begin=0, end=40),
        dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True,
             begin=40, end=90),
    ],
    'train_cfg.max_epochs': 90,
    'train_dataloader.sampler.samples_per_epoch': 100 * 64,
}


def test_code_config_differs_from_the_paper_config_as_listed():
    code, paper = _cfg('dcmip_r50-code_market.py').to_dict(), _cfg(
        'dcmip_r50_market.py').to_dict()
    for cfg, size in ((code, (320, 128)), (paper, (256, 128))):
        for key in LOADERS:
            pipeline = cfg[key]['dataset'].pop('pipeline')
            assert pipeline[1] == _resize(size), key
            if key == 'train_dataloader':
                assert tuple(pipeline[3]['crop_size']) == size
                assert pipeline[3]['padding'] == 10
    a, b = _flatten(code), _flatten(paper)
    diff = {k: a.get(k, '<absent>') for k in a.keys() | b.keys()
            if a.get(k, '<absent>') != b.get(k, '<absent>')}
    assert diff == EXPECTED
    # the unofficial #Market1501 branch, as the paper config
    assert code['model']['dcp_memory']['update_modes'] == ('hard', 'mean')
    assert code['model']['dcp_memory']['old_weight'] == 0.1


def test_every_difference_is_in_the_readme_table():
    text = open(osp.join(DCMIP, 'README.md'), encoding='utf-8').read()
    start = text.index('## `dcmip_r50-code_market.py`')
    table = text[start:text.index('\n## ', start + 1)]
    for key in EXPECTED:
        if key == 'model.loss_dcp.margin_index':
            continue  # the default
        name = key.split('.')[-1]
        assert name in table, key
    assert '320×128' in table


def test_the_two_stages_learning_rate():
    """3.5e-4 (epochs 0-19), 3.5e-5 (20-39), then a new optimiser and
    StepLR: 3.5e-4 (40-59), 3.5e-5 (60-79), 3.5e-6 (80-89)."""
    cfg = _cfg('dcmip_r50-code_market.py')
    hook = HOOKS.build(cfg.custom_hooks[0])
    assert hook.epochs == [40] and hook.optim_wrapper is None
    params = [torch.nn.Parameter(torch.ones(2))]

    def adam():
        opt = cfg.optim_wrapper.optimizer.to_dict()
        assert opt.pop('type') == 'Adam'
        return OptimWrapper(torch.optim.Adam(params, **opt))

    wrapper = adam()
    schedulers = [
        PARAM_SCHEDULERS.build(
            dict(copy.deepcopy(s), optimizer=wrapper))
        for s in cfg.param_scheduler
    ]
    lrs = []
    for epoch in range(cfg.train_cfg.max_epochs):
        if epoch in hook.epochs:
            params[0].grad = torch.ones(2)
            wrapper.step()  # some Adam state to clear
            reset_optim_wrapper(wrapper, adam())
            assert len(wrapper.optimizer.state) == 0
        lrs.append(wrapper.get_lr()['lr'][0])
        for s in schedulers:
            s.step()
    expect = [3.5e-4] * 20 + [3.5e-5] * 20 + [3.5e-4] * 20 + \
        [3.5e-5] * 20 + [3.5e-6] * 10
    assert lrs == pytest.approx(expect, rel=1e-9)
    assert lrs[40] == 3.5e-4  # exactly the config's, not 3.5e-5 * 10
