# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Resume, work dirs, strict test checkpoints and option checks, end to end.

Every test runs ``tools/train.py`` / ``tools/test.py`` as a user would (a
tiny synthetic dataset, 2 dataloader workers with persistent workers and
random augmentations, validation and best-checkpoint bookkeeping). The
uninterrupted run is a ``python tools/train.py`` subprocess; the resumed
runs run ``tools/train.py`` in a process of their own forked from a server
that has the package imported (``dist_spawn.run_tool``: importing it cost
more than such a run); the runs refused before any training starts run the
tool's ``main()`` in this process.
"""
import glob
import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from dist_spawn import run_tool

from tiny_config import tiny_cfg

from mmreid_usl.engine.checkpointing import (release_work_dir,  # noqa: E402
                                             setup_runtime)

# this process reads the checkpoints the trainings write (weights-only)
setup_runtime()

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytestmark = pytest.mark.slow


def _tool(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=env)
    proc.log = proc.stdout + proc.stderr
    return proc


def _train(config, work_dir, *extra):
    return _tool('tools/train.py', config, '--work-dir', str(work_dir),
                 *extra)


def _forked_train(config, work_dir, *extra):
    """:func:`_train` in a process forked from the fork server."""
    code, log = run_tool('tools/train.py', config, '--work-dir', work_dir,
                         *extra, env=dict(OMP_NUM_THREADS='1'),
                         log_path=f'{work_dir}.train.log')
    return SimpleNamespace(returncode=code, log=log, stderr=log)


def _refused(tool, monkeypatch, *argv) -> str:
    """Run ``tools/<tool>``'s ``main()`` in this process with ``argv``; it
    must exit with an error (what a subprocess prints on stderr), which is
    returned."""
    spec = importlib.util.spec_from_file_location(
        f'tools_{tool[:-3]}', osp.join(REPO, 'tools', tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr('sys.argv', [f'tools/{tool}', *map(str, argv)])
    with pytest.raises(SystemExit) as err:
        module.main()
    assert err.value.code not in (0, None)
    return str(err.value.code)


@pytest.fixture(scope='module')
def config_file(tiny_reid_root, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('robust_cfg') / 'tiny_cc.py')
    cfg = tiny_cfg(tiny_reid_root, 'unused', max_epochs=2, with_val=True)
    # random augmentations in 2 persistent workers: their random state must
    # be reproduced by a resumed run
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadReIDImage'),
        dict(type='Resize', scale=(16, 32)),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='ReIDRandomErasing', erase_prob=0.5),
        dict(type='PackReIDInputs')
    ]
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.persistent_workers = True
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict()
    cfg.custom_hooks = [dict(type='ValBeforeTrainHook')]
    # MMEngine's plain hook, as a user config may have; tools/train.py
    # upgrades it to WorkDirCheckpointHook
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='auto',
        rule='greater')
    cfg.log_level = 'INFO'
    cfg.pop('work_dir')
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def straight_run(config_file, tmp_path_factory):
    """2 epochs without interruption."""
    work = tmp_path_factory.mktemp('straight') / 'S'
    proc = _train(config_file, work)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, proc.log


def _tree(folder):
    """{relative path: sha256} of every file under ``folder``."""
    out = {}
    for path in sorted(glob.glob(osp.join(str(folder), '**'),
                                 recursive=True)):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[osp.relpath(path, str(folder))] = hashlib.sha256(
                    f.read()).hexdigest()
    return out


def _state(path):
    return torch.load(str(path), map_location='cpu')['state_dict']


def _last_val(work):
    """The last validation record of a run's scalars.json."""
    (path, ) = glob.glob(osp.join(str(work), '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if 'reid/mAP' in r][-1]


def _init_line(log):
    return [ln for ln in log.splitlines()
            if 'Initialisation vs final' in ln][-1].split(' - ')[-1]


def test_interrupted_and_resumed_run_is_bit_exact(straight_run, config_file,
                                                  tmp_path):
    straight, straight_log = straight_run
    # the run was interrupted during epoch 2: only epoch_1.pth survived
    resumed = tmp_path / 'R'
    resumed.mkdir()
    shutil.copy(straight / 'epoch_1.pth', resumed / 'epoch_1.pth')
    proc = _forked_train(config_file, resumed, '--resume')
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'resumed epoch: 1' in proc.log
    a, b = _state(straight / 'epoch_2.pth'), _state(resumed / 'epoch_2.pth')
    assert set(a) == set(b)
    assert 'pseudo_labels' in a and any(k.startswith('memory.') for k in a)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f'not bit-exact: {differ[:5]}'
    val_a, val_b = _last_val(straight), _last_val(resumed)
    assert val_a['step'] == val_b['step'] == 2
    assert {k: v for k, v in val_a.items() if k.startswith('reid/')} == \
        {k: v for k, v in val_b.items() if k.startswith('reid/')}
    # the init -> final line survives the resume, with the same numbers
    assert _init_line(proc.log) == _init_line(straight_log)


def test_copied_work_dir_resumes_from_its_own_files(straight_run,
                                                    config_file, tmp_path):
    straight, _ = straight_run
    before = _tree(straight)
    assert any(name.startswith('best_') for name in before)
    copy = tmp_path / 'B'
    shutil.copytree(straight, copy)
    # make the next validation a new best, so that the previous best
    # checkpoint (recorded as a path of the ORIGINAL folder) is replaced
    ckpt = torch.load(str(copy / 'epoch_2.pth'), map_location='cpu')
    ckpt['message_hub']['runtime_info']['best_score'] = -1.0
    torch.save(ckpt, str(copy / 'epoch_2.pth'))
    proc = _forked_train(config_file, copy, '--resume', '--cfg-options',
                         'train_cfg.max_epochs=3')
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f'newest checkpoint of this work dir is {copy}/epoch_2.pth' in \
        proc.log
    assert 'resumed epoch: 2' in proc.log
    # the original folder is byte-identical: nothing read as a resume point,
    # nothing deleted, nothing written
    assert _tree(straight) == before
    # the copy's own bookkeeping moved on
    assert (copy / 'last_checkpoint').read_text() == 'epoch_3.pth'
    assert (copy / 'epoch_3.pth').is_file()
    assert (copy / 'best_reid_mAP_epoch_3.pth').is_file()
    old_best = [n for n in before if n.startswith('best_')]
    assert not any((copy / n).exists() for n in old_best)


def test_moved_work_dir_resumes_with_fallback_and_new_lr(
        straight_run, config_file, tmp_path, monkeypatch, restore_environ):
    straight, _ = straight_run
    moved = tmp_path / 'M'
    # a work dir written elsewhere, then moved (last_checkpoint as MMEngine
    # writes it: an absolute path that no longer exists)
    shutil.copytree(straight, moved)
    (moved / 'last_checkpoint').write_text(
        str(tmp_path / 'gone' / 'epoch_2.pth'))
    # its newest checkpoint was cut while being written
    data = (moved / 'epoch_2.pth').read_bytes()
    (moved / 'epoch_2.pth').write_bytes(data[:len(data) // 3])

    # refused before anything is built (in this process; see the top)
    stderr = _refused('train.py', monkeypatch, config_file, '--work-dir',
                      moved, '--resume')
    release_work_dir(str(moved))  # held by this process until it ends
    assert f'{moved}/epoch_2.pth cannot be read' in stderr
    assert f'--resume {moved}/epoch_1.pth' in stderr
    assert '--resume-fallback' in stderr

    # restart after a NaN with a lower learning rate: the config's lr wins
    proc = _forked_train(config_file, moved, '--resume', '--resume-fallback',
                         '--cfg-options', 'optim_wrapper.optimizer.lr=1e-05')
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f'resuming from the previous readable one, {moved}/epoch_1.pth' \
        in proc.log
    assert 'resumed epoch: 1' in proc.log
    assert 'the config wins' in proc.log
    ckpt = torch.load(str(moved / 'epoch_2.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 2
    assert [g['lr'] for g in ckpt['optimizer']['param_groups']] == [1e-05]


def test_test_tool_rejects_a_checkpoint_that_does_not_fit(
        straight_run, config_file, tmp_path, monkeypatch, restore_environ):
    straight, _ = straight_run
    out = tmp_path / 'm.json'
    # another architecture: ResNet-34 blocks are missing from the checkpoint
    # (refused before testing: in this process, see the top)
    stderr = _refused('test.py', monkeypatch, config_file,
                      straight / 'epoch_2.pth', '--work-dir', tmp_path,
                      '--out', out, '--cfg-options',
                      'model.encoder.backbone.depth=34')
    assert 'missing keys' in stderr
    assert 'encoder.backbone.layer1.2.conv1.weight' in stderr
    assert 'memory' not in stderr.split('missing keys')[1].split('\n')[0]
    assert not out.exists()
