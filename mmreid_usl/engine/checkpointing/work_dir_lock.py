# Copyright (c) mmreid_usl contributors. All rights reserved.
"""One training run per work dir: an advisory lock that dies with its run.

Two trainings writing into one work dir overwrite each other's checkpoints,
``last_checkpoint`` and config dump, and one of them crashes when the other
renames a checkpoint it is writing. A run therefore holds an exclusive
:func:`fcntl.flock` on ``WORK_DIR/.train.lock`` for its whole life. The
kernel releases such a lock when the process ends, however it ends (a crash,
``kill -9``, a lost node), so a dead run never leaves a stale lock behind;
the file itself stays and only tells who held it last. A second run is
refused with the holder's PID, host, start time and command line.

The lock is advisory: it only excludes processes that ask for it
(``tools/train.py`` and :class:`WorkDirCheckpointHook`). On file systems
without ``flock`` (or on Windows) training goes on with a warning.
"""
import datetime
import errno
import json
import logging
import os
import os.path as osp
import socket
import sys
from typing import Dict, Optional

from mmengine.logging import print_log

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None

#: Name of the lock file inside the work dir.
LOCK_NAME = '.train.lock'

#: Locks held by this process, by real path of the work dir (a second
#: ``flock`` on a new descriptor of the same file would block this very
#: process, so the lock is taken once and shared).
_HELD: Dict[str, 'WorkDirLock'] = {}


class WorkDirBusyError(RuntimeError):
    """Another running training holds the work dir; the message names it."""


class WorkDirLock:
    """An exclusive, advisory lock on a work dir, held until released or
    until the process ends.

    Args:
        work_dir (str): The run's work dir (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._file = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self) -> bool:
        """Take the lock, or raise if another process holds it.

        Returns:
            bool: True when the lock is held, False when the file system
            cannot lock (a warning says so and training goes on).

        Raises:
            WorkDirBusyError: Another process holds the lock.
        """
        if self.held:
            return True
        if fcntl is None:  # pragma: no cover (Windows)
            self._unsupported('fcntl is not available on this platform')
            return False
        os.makedirs(self.work_dir, exist_ok=True)
        f = open(self.path, 'a+', encoding='utf-8')
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise WorkDirBusyError(self._busy_message()) from None
        except OSError as err:
            f.close()
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS,
                             errno.EINVAL):
                self._unsupported(os.strerror(err.errno))
                return False
            raise
        holder = dict(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=datetime.datetime.now().astimezone().isoformat(
                timespec='seconds'),
            command=' '.join([osp.basename(sys.executable)] + sys.argv))
        f.seek(0)
        f.truncate()
        f.write(json.dumps(holder) + '\n')
        f.flush()
        self._file = f
        return True

    def release(self) -> None:
        """Release the lock (it is also released when the process ends)."""
        if self._file is None:
            return
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def holder(self) -> Optional[dict]:
        """What the lock file says about its (last) holder, if readable."""
        try:
            with open(self.path, encoding='utf-8') as f:
                return json.loads(f.read() or 'null')
        except (OSError, ValueError):
            return None

    def _busy_message(self) -> str:
        info = self.holder() or {}
        who = (f"PID {info.get('pid', '?')} on host {info.get('host', '?')}, "
               f"started {info.get('started', '?')}")
        command = info.get('command')
        if command:
            who += f': {command}'
        return (f'the work dir {self.work_dir} is in use by another training '
                f'run ({who}). Two runs in one work dir overwrite each '
                "other's checkpoints and logs: wait for it to finish, stop "
                'it, or train into another --work-dir. (The lock in '
                f'{self.path} is released when that process ends.)')

    def _unsupported(self, why: str) -> None:
        print_log(
            f'Cannot lock the work dir {self.work_dir} ({why}): make sure no '
            'other training writes into it while this one runs.',
            logger='current',
            level=logging.WARNING)


def lock_work_dir(work_dir: str) -> WorkDirLock:
    """Hold ``work_dir`` for this process (idempotent within a process).

    Args:
        work_dir (str): The run's work dir.

    Returns:
        WorkDirLock: The lock, held until :meth:`WorkDirLock.release` or the
        end of the process.

    Raises:
        WorkDirBusyError: Another process holds the work dir.
    """
    key = osp.realpath(work_dir)
    lock = _HELD.get(key)
    if lock is None or not lock.held:
        lock = WorkDirLock(work_dir)
        if lock.acquire():
            _HELD[key] = lock
    return lock


def release_work_dir(work_dir: str) -> None:
    """Release this process's lock on ``work_dir``, if it holds one."""
    lock = _HELD.pop(osp.realpath(work_dir), None)
    if lock is not None:
        lock.release()


def holds_work_dir(work_dir: str) -> bool:
    """Whether this process holds the lock on ``work_dir``."""
    lock = _HELD.get(osp.realpath(work_dir))
    return lock is not None and lock.held


#: Environment variables that hold the global rank, by launcher.
_RANK_VARIABLES = {
    'pytorch': ('RANK', ),
    'slurm': ('SLURM_PROCID', ),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'PMI_RANK'),
}


def launcher_rank(launcher: str) -> int:
    """This process's global rank, read from the launcher's environment.

    For use before ``torch.distributed`` is initialised (the Runner does
    that when it is built, after the work dir has been written to).

    Args:
        launcher (str): ``tools/train.py --launcher``: ``'none'`` (rank 0),
            ``'pytorch'`` (``RANK``, set by torchrun / ``dist_train.sh``),
            ``'slurm'`` (``SLURM_PROCID``) or ``'mpi'``.
    """
    for name in _RANK_VARIABLES.get(launcher, ()):
        value = os.environ.get(name, '').strip()
        if value.isdigit():
            return int(value)
    return 0
