# Copyright (c) mmreid_usl contributors. All rights reserved.
"""One run per work dir (issue 24, case 2): the lock, its holder's name in the
refusal, and no stale lock after a killed run."""
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

import mmreid_usl.engine.checkpointing.work_dir_lock as work_dir_lock
from mmreid_usl.engine.checkpointing.work_dir_lock import (
    LOCK_NAME, WorkDirBusyError, holds_work_dir, launcher_rank, lock_work_dir,
    release_work_dir)

#: The module under test, loaded by the locker below from its file: the
#: module needs nothing of the package, whose import would cost the locker
#: process more than the test itself.
LOCK_MODULE = work_dir_lock.__file__

#: Locks argv[1], prints 'locked', then waits (or kills itself with -9).
LOCKER = textwrap.dedent('''
    import importlib.util, os, signal, sys, time
    spec = importlib.util.spec_from_file_location('work_dir_lock',
                                                  sys.argv[3])
    work_dir_lock = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(work_dir_lock)
    work_dir_lock.lock_work_dir(sys.argv[1])
    print('locked', flush=True)
    if sys.argv[2] == 'kill':
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
''')


def _locker(work, mode):
    return subprocess.Popen([sys.executable, '-c', LOCKER,
                             str(work), mode, LOCK_MODULE],
                            stdout=subprocess.PIPE,
                            text=True)


def test_lock_is_reentrant_within_a_process_and_released(tmp_path):
    work = str(tmp_path / 'work')
    lock = lock_work_dir(work)
    assert lock.held and holds_work_dir(work)
    assert lock_work_dir(work) is lock  # same process: no self-deadlock
    holder = lock.holder()
    assert holder['pid'] == os.getpid()
    assert holder['host'] == socket.gethostname()
    assert holder['started']
    release_work_dir(work)
    assert not holds_work_dir(work)
    assert os.path.isfile(os.path.join(work, LOCK_NAME))


@pytest.mark.slow
def test_a_second_run_is_refused_naming_the_first(tmp_path):
    work = tmp_path / 'work'
    other = _locker(work, 'wait')
    try:
        assert other.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirBusyError) as err:
            lock_work_dir(str(work))
        msg = str(err.value)
        assert f'PID {other.pid} on host {socket.gethostname()}' in msg
        assert 'started 2' in msg  # an ISO date
        assert str(work) in msg and '--work-dir' in msg
        assert not holds_work_dir(str(work))
    finally:
        other.kill()
        other.wait()
    # the holder is gone: the lock is free
    assert lock_work_dir(str(work)).held
    release_work_dir(str(work))


@pytest.mark.slow
def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    work = tmp_path / 'work'
    other = _locker(work, 'kill')
    assert other.stdout.readline().strip() == 'locked'
    assert other.wait() == -signal.SIGKILL
    assert (work / LOCK_NAME).is_file()  # the file stays, the lock does not
    lock = lock_work_dir(str(work))
    assert lock.held and lock.holder()['pid'] == os.getpid()
    release_work_dir(str(work))


def test_launcher_rank(monkeypatch):
    monkeypatch.setenv('RANK', '3')
    monkeypatch.setenv('SLURM_PROCID', '5')
    assert launcher_rank('none') == 0
    assert launcher_rank('pytorch') == 3
    assert launcher_rank('slurm') == 5
    monkeypatch.delenv('RANK')
    assert launcher_rank('pytorch') == 0
