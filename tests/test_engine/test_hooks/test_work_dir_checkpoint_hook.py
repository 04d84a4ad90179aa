# Copyright (c) mmreid_usl contributors. All rights reserved.
import copy
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper

from mmreid_usl.engine.hooks import WorkDirCheckpointHook
from mmreid_usl.engine.hooks.work_dir_checkpoint_hook import (
    _ConfinedBackend, apply_config_lr)


def _setup(lr):
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(
        torch.zeros(2))]
    optim = torch.optim.Adam([{
        'params': params[:1]
    }, {
        'params': params[1:],
        'lr': lr * 0.5
    }],
                             lr=lr)
    scheds = [
        LinearLR(optim, start_factor=0.1, by_epoch=True, begin=0, end=3),
        MultiStepLR(optim, milestones=[5], gamma=0.1, by_epoch=True)
    ]
    return optim, scheds


def _lrs(optim):
    return [g['lr'] for g in optim.param_groups]


def _step(scheds, n):
    for _ in range(n):
        for s in scheds:
            s.step()


def test_config_lr_replaces_the_checkpoint_lr_keeping_the_shape():
    # a run with lr 1e-3 interrupted after 4 epochs
    old_optim, old_scheds = _setup(1e-3)
    _step(old_scheds, 4)
    ckpt = dict(
        optimizer=copy.deepcopy(old_optim.state_dict()),
        param_schedulers=[copy.deepcopy(s.state_dict()) for s in old_scheds])
    # resumed with lr 1e-4 in the config (as after a NaN)
    optim, scheds = _setup(1e-4)
    runner = SimpleNamespace(optim_wrapper=OptimWrapper(optim))
    assert apply_config_lr(runner, ckpt)
    optim.load_state_dict(ckpt['optimizer'])
    for s, state in zip(scheds, ckpt['param_schedulers']):
        s.load_state_dict(state)
    for _ in range(4):  # through the milestone: same schedule, 10x lower
        torch.testing.assert_close(_lrs(optim),
                                   [v / 10 for v in _lrs(old_optim)])
        _step(scheds, 1)
        _step(old_scheds, 1)
    assert _lrs(optim) == pytest.approx([1e-5, 0.5e-5])  # after milestone


def test_same_lr_leaves_the_checkpoint_alone():
    old_optim, old_scheds = _setup(1e-3)
    _step(old_scheds, 2)
    ckpt = dict(optimizer=old_optim.state_dict())
    before = copy.deepcopy(ckpt)
    runner = SimpleNamespace(optim_wrapper=OptimWrapper(_setup(1e-3)[0]))
    assert not apply_config_lr(runner, ckpt)
    assert ckpt == before
    # off by option
    hook = WorkDirCheckpointHook(interval=1, lr_from_config=False)
    runner = SimpleNamespace(optim_wrapper=OptimWrapper(_setup(1e-4)[0]))
    hook.after_load_checkpoint(runner, ckpt)
    assert ckpt == before


def test_testing_with_an_unbuilt_optimizer_leaves_the_checkpoint_alone():
    """tools/test.py loads a checkpoint before any optimizer exists: the
    wrapper is still its config (a ConfigDict, attribute access included)."""
    from mmengine.config import ConfigDict
    old_optim, _ = _setup(1e-3)
    ckpt = dict(optimizer=old_optim.state_dict())
    before = copy.deepcopy(ckpt)
    cfg = ConfigDict(optimizer=dict(type='Adam', lr=1e-4))
    assert not apply_config_lr(SimpleNamespace(optim_wrapper=cfg), ckpt)
    assert ckpt == before


def test_deletions_outside_the_folder_are_refused(tmp_path):
    removed = []
    backend = SimpleNamespace(
        remove=removed.append, rmtree=removed.append, join_path=lambda *a: a)
    own = tmp_path / 'work'
    confined = _ConfinedBackend(backend, str(own))
    confined.remove(str(own / 'best_epoch_1.pth'))
    confined.remove(str(tmp_path / 'other' / 'best_epoch_1.pth'))
    confined.rmtree(str(tmp_path / 'work2'))  # a sibling with a prefix
    confined.remove(str(own / '..' / 'x.pth'))
    assert removed == [str(own / 'best_epoch_1.pth')]
    assert confined.join_path('a', 'b') == ('a', 'b')  # delegated


def test_runner_auto_resume_with_empty_work_dir_is_an_error(
        tiny_reid_root, make_tiny_cfg, tmp_path):
    # resume=True in a config used through the Runner API (no tools/train.py)
    from mmengine.runner import Runner

    from mmreid_usl.utils.resume import ResumeError
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path / 'work'))
    cfg.default_hooks.checkpoint = dict(
        type='WorkDirCheckpointHook', interval=1)
    cfg.resume = True
    cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ResumeError, match='holds no epoch_N.pth'):
        runner.train()
