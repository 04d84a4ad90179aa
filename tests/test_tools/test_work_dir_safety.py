# Copyright (c) mmreid_usl contributors. All rights reserved.
"""One run per work dir, and nothing lost when a run is killed: end to end.

``tools/train.py`` (and a script that kills itself with SIGKILL at a chosen
moment) run as subprocesses on a tiny synthetic dataset; the run that
resumes after the kill runs ``tools/train.py`` in a process forked from a
server that has the package imported (``dist_spawn.run_tool``), and the run
refused because another one holds the work dir runs ``tools/train.py``'s
``main()`` in this process (it stops before building anything).
"""
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from dist_spawn import run_tool

from tiny_config import tiny_cfg

from mmreid_usl.engine.checkpointing import setup_runtime  # noqa: E402
from mmreid_usl.engine.checkpointing.work_dir_lock import \
    holds_work_dir  # noqa: E402

# this process reads the checkpoints the trainings write (weights-only)
setup_runtime()

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

pytestmark = pytest.mark.slow


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1')


def _run(*args, timeout=300):
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=_env())
    proc.log = proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope='module')
def config_file(tiny_reid_root, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('safety_cfg') / 'tiny_cc.py')
    cfg = tiny_cfg(
        tiny_reid_root, 'unused', max_epochs=2, iters=2, with_val=True)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=1, save_best='auto', rule='greater')
    cfg.log_level = 'INFO'
    cfg.pop('work_dir')
    cfg.dump(path)
    return path


#: Trains CONFIG into WORK_DIR, every validation a new best, and SIGKILLs
#: itself halfway through writing the second best checkpoint.
KILLED_WHILE_SAVING_BEST = r'''
import os, signal, sys
from mmengine.config import Config
from mmengine.fileio import LocalBackend
from mmreid_usl.engine.checkpointing import setup_runtime
from mmreid_usl.utils import register_all_modules
from mmreid_usl.engine.hooks import WorkDirCheckpointHook
from mmreid_usl.engine.runner import ReIDRunner

setup_runtime()
register_all_modules(init_default_scope=False)
cfg = Config.fromfile(sys.argv[1])
cfg.work_dir = sys.argv[2]
cfg.default_hooks.checkpoint.type = 'WorkDirCheckpointHook'
put = LocalBackend.put


bests = []


def put_and_die(self, obj, filepath):
    if os.path.basename(filepath).startswith('best_'):
        bests.append(filepath)
    if len(bests) == 2:
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return put(self, obj, filepath)


LocalBackend.put = put_and_die
after_val_epoch = WorkDirCheckpointHook.after_val_epoch


def always_better(self, runner, metrics=None):
    runner.message_hub.update_info('best_score', -1.0)
    return after_val_epoch(self, runner, metrics)


WorkDirCheckpointHook.after_val_epoch = always_better
ReIDRunner.from_cfg(cfg).train()
'''


def test_kill_while_saving_a_new_best_keeps_the_old_one(
        config_file, tmp_path):
    """Issue 24, case 1: the old best was deleted before the new one was
    complete; the resumed run then said it 'belongs to another folder'."""
    work = tmp_path / 'work'
    script = tmp_path / 'killed.py'
    script.write_text(KILLED_WHILE_SAVING_BEST)
    proc = _run(str(script), config_file, str(work))
    assert proc.returncode == -9, proc.log[-3000:]
    partials = sorted(p.name for p in work.glob('best_*.pth.partial'))
    assert len(partials) == 1, sorted(os.listdir(work))
    bests = sorted(work.glob('best_*.pth'))
    assert len(bests) == 1, sorted(os.listdir(work))  # the previous best
    assert torch.load(str(bests[0]), map_location='cpu')['state_dict']

    code, log = run_tool('tools/train.py', config_file, '--work-dir', work,
                         '--resume', '--cfg-options', 'train_cfg.max_epochs=3',
                         env=dict(OMP_NUM_THREADS='1'),
                         log_path=str(tmp_path / 'resume.log'))
    proc = SimpleNamespace(returncode=code, log=log)
    assert proc.returncode == 0, proc.log[-4000:]
    assert f'Removed {work / partials[0]}: an incomplete file left by a ' \
        'run killed while it was saving' in proc.log
    assert 'belongs to another folder' not in proc.log
    assert not list(work.glob('*.partial'))
    assert list(work.glob('best_*.pth'))


def _wait_for(predicate, proc, timeout=240):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, 'the first run ended too early: ' + \
            proc.communicate()[0][-3000:]
        assert time.time() < deadline, 'timed out'
        time.sleep(0.2)


#: ``tools/train.py ARGS...`` that pauses after its first epoch until the
#: file PAUSE_FILE (argv[1]) is deleted.
PAUSED_TRAIN = r'''
import os, runpy, sys, time
from mmengine.hooks import CheckpointHook

pause = sys.argv.pop(1)
sys.argv = sys.argv[1:]  # tools/train.py ARGS...
after_train_epoch = CheckpointHook.after_train_epoch


def paused(self, runner):
    after_train_epoch(self, runner)
    while os.path.exists(pause):
        time.sleep(0.1)


CheckpointHook.after_train_epoch = paused
runpy.run_path('tools/train.py', run_name='__main__')
'''


def _refused_train(monkeypatch, *argv) -> str:
    """``tools/train.py ARGV`` in this process: it must exit with an error
    (what a subprocess prints on stderr), which is returned."""
    spec = importlib.util.spec_from_file_location(
        'tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr('sys.argv', ['tools/train.py', *map(str, argv)])
    with pytest.raises(SystemExit) as err:
        module.main()
    assert err.value.code not in (0, None)
    return str(err.value.code)


def test_a_second_run_into_a_busy_work_dir_is_refused(config_file, tmp_path,
                                                      monkeypatch,
                                                      restore_environ):
    """Issue 24, case 2: two trainings in one work dir mixed their
    checkpoints and logs (one crashed on the other's .partial file)."""
    work = tmp_path / 'work'
    script, pause = tmp_path / 'paused.py', tmp_path / 'pause'
    script.write_text(PAUSED_TRAIN)
    pause.write_text('')
    first = subprocess.Popen([
        sys.executable,
        str(script),
        str(pause), 'tools/train.py', config_file, '--work-dir',
        str(work)
    ],
                             cwd=REPO,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             text=True,
                             env=_env())
    try:
        # the first run is in the middle of training
        _wait_for((work / 'epoch_1.pth').is_file, first)
        second = _refused_train(monkeypatch, config_file, '--work-dir', work)
        assert not holds_work_dir(str(work))
        assert first.poll() is None
    finally:
        pause.unlink()
        log, _ = first.communicate(timeout=300)
    assert 'is in use by another training run' in second
    assert f'PID {first.pid} on host {socket.gethostname()}, started ' in \
        second
    assert first.returncode == 0, log[-3000:]
    # the refused run wrote nothing: one log folder, the first run's files
    assert len([p for p in work.glob('2*') if p.is_dir()]) == 1
    assert (work / 'epoch_2.pth').is_file()
