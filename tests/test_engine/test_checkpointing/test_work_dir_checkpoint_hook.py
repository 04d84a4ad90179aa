# Copyright (c) mmreid_usl contributors. All rights reserved.
import copy
import os
from types import SimpleNamespace

import pytest
import torch
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper

from mmreid_usl.engine.hooks import WorkDirCheckpointHook
from mmreid_usl.engine.checkpointing.bookkeeping import \
    ConfinedBackend as _ConfinedBackend
from mmreid_usl.engine.checkpointing.config_lr import apply_config_lr


def _setup(lr):
    params = [
        torch.nn.Parameter(torch.zeros(2)),
        torch.nn.Parameter(torch.zeros(2))
    ]
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
    backend = SimpleNamespace(remove=removed.append,
                              rmtree=removed.append,
                              join_path=lambda *a: a)
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

    from mmreid_usl.engine.checkpointing.resume import ResumeError
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path / 'work'))
    cfg.default_hooks.checkpoint = dict(type='WorkDirCheckpointHook',
                                        interval=1)
    cfg.resume = True
    cfg.load_from = None
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ResumeError, match='holds no epoch_N.pth'):
        runner.train()


# ---------------------------------------------------------------------------
# A run killed while saving keeps every earlier checkpoint (issue 24, case 1)
class _Killed(Exception):
    """Stands for the run being killed in the middle of a write."""


def _half_then_die(self, obj, filepath):
    with open(filepath, 'wb') as f:
        f.write(obj[:len(obj) // 2])
    raise _Killed


@pytest.fixture
def trained_best(tiny_reid_root, make_tiny_cfg, tmp_path):
    """A 1-epoch ReIDRunner run with a best checkpoint and max_keep 1."""
    from mmreid_usl.engine.runner import ReIDRunner
    work = tmp_path / 'work'
    cfg = make_tiny_cfg(tiny_reid_root,
                        str(work),
                        max_epochs=1,
                        iters=1,
                        with_val=True)
    cfg.default_hooks.checkpoint = dict(type='WorkDirCheckpointHook',
                                        interval=1,
                                        max_keep_ckpts=1,
                                        save_best='auto',
                                        rule='greater')
    runner = ReIDRunner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks
                if isinstance(h, WorkDirCheckpointHook))
    assert (work / 'best_reid_mAP_epoch_1.pth').is_file()
    # the next save is at epoch 2
    runner.train_loop._epoch = 2
    return runner, hook, work


def _loads(path):
    return torch.load(str(path), map_location='cpu')['meta']['epoch'] == 1


def test_a_killed_best_save_keeps_the_previous_best(trained_best, monkeypatch):
    from mmengine.fileio import LocalBackend
    runner, hook, work = trained_best
    old_best = work / 'best_reid_mAP_epoch_1.pth'
    monkeypatch.setattr(LocalBackend, 'put', _half_then_die)
    with pytest.raises(_Killed):
        hook._save_best_checkpoint(runner, {'reid/mAP': 1e9})
    # MMEngine alone deletes the old best before writing the new one
    assert old_best.is_file() and _loads(old_best)
    assert not (work / 'best_reid_mAP_epoch_2.pth').exists()


def test_a_killed_epoch_save_keeps_the_oldest_kept_checkpoint(
        trained_best, monkeypatch):
    from mmengine.fileio import LocalBackend
    runner, hook, work = trained_best
    monkeypatch.setattr(LocalBackend, 'put', _half_then_die)
    with pytest.raises(_Killed):  # max_keep_ckpts=1 would drop epoch_1
        hook._save_checkpoint(runner)
    assert (work / 'epoch_1.pth').is_file() and _loads(work / 'epoch_1.pth')


def test_a_complete_save_replaces_the_old_checkpoints(trained_best):
    runner, hook, work = trained_best
    hook._save_checkpoint(runner)  # epoch_2; max_keep_ckpts=1
    hook._save_best_checkpoint(runner, {'reid/mAP': 1e9})
    names = sorted(p.name for p in work.glob('*.pth'))
    assert names == ['best_reid_mAP_epoch_2.pth', 'epoch_2.pth']
    # a new best under the name of the previous one is kept
    hook._save_best_checkpoint(runner, {'reid/mAP': 2e9})
    assert (work / 'best_reid_mAP_epoch_2.pth').is_file()
    assert not list(work.glob('*.partial'))


def test_stale_partial_files_are_removed_with_a_log_line(tmp_path, capsys):
    from mmengine.logging import MMLogger

    from mmreid_usl.engine.checkpointing.atomic import \
        remove_stale_partials
    MMLogger.get_instance('test_stale_partials')
    for name in ('best_reid_mAP_epoch_2.pth.partial', 'epoch_3.pth.partial',
                 'last_checkpoint.partial', 'notes.txt.partial',
                 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'x')
    removed = remove_stale_partials(str(tmp_path))
    assert sorted(map(os.path.basename, removed)) == [
        'best_reid_mAP_epoch_2.pth.partial', 'epoch_3.pth.partial',
        'last_checkpoint.partial'
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'epoch_2.pth', 'notes.txt.partial'
    ]
    out = capsys.readouterr()
    assert 'epoch_3.pth.partial: an incomplete file left by a run killed' \
        in out.out + out.err


def test_a_missing_best_of_this_folder_is_not_called_another_folders(
        tmp_path, capsys):
    from mmreid_usl.engine.checkpointing.bookkeeping import report_reanchor
    report_reanchor('best checkpoint',
                    str(tmp_path / 'best_reid_mAP_epoch_1.pth'), None,
                    str(tmp_path))
    out = capsys.readouterr()
    text = out.out + out.err
    assert 'no longer exists' in text and 'another folder' not in text


def test_load_from_without_resume_leaves_the_lr_alone(capsys):
    """Issue 24, case 9: load_from logged 'the config wins ... (current lr
    3e-05 -> 1e-05)' although no optimizer state is loaded."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('test_lr_only_on_resume')
    old_optim, _ = _setup(1e-3)
    ckpt = dict(optimizer=old_optim.state_dict())
    before = copy.deepcopy(ckpt)
    hook = WorkDirCheckpointHook(interval=1)
    optim = OptimWrapper(_setup(1e-4)[0])
    # load_from (a stage hand-off): nothing rescaled, nothing logged
    hook.after_load_checkpoint(
        SimpleNamespace(optim_wrapper=optim, _resume=False), ckpt)
    assert ckpt == before
    assert 'the config wins' not in ''.join(capsys.readouterr())
    # resume: the config's lr wins, with the warning
    hook.after_load_checkpoint(
        SimpleNamespace(optim_wrapper=optim, _resume=True), ckpt)
    assert ckpt['optimizer']['param_groups'][0]['initial_lr'] == \
        pytest.approx(1e-4)
    assert 'the config wins' in ''.join(capsys.readouterr())


def test_no_file_client_deprecation_notices(tiny_reid_root, make_tiny_cfg,
                                            tmp_path, capsys):
    """Issue 24, case 12 (log noise): every run logged MMEngine's
    '"FileClient" will be deprecated' and '"HardDiskBackend" ...' notices,
    which the checkpoint hook triggers without using a FileClient."""
    from mmreid_usl.engine.runner import ReIDRunner
    cfg = make_tiny_cfg(tiny_reid_root,
                        str(tmp_path / 'work'),
                        max_epochs=1,
                        iters=1)
    cfg.default_hooks.checkpoint = dict(type='WorkDirCheckpointHook',
                                        interval=1)
    ReIDRunner.from_cfg(cfg).train()
    out = ''.join(capsys.readouterr())
    assert (tmp_path / 'work' / 'epoch_1.pth').is_file()
    assert 'FileClient' not in out and 'HardDiskBackend' not in out
