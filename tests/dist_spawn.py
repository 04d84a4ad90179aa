# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Worker processes for the tests, forked from a server that imported the
package once.

:func:`spawn` is ``torch.multiprocessing.spawn`` with the ``forkserver``
start method, and :func:`run_tool` runs ``python tools/X.py ARGS`` in such a
worker. The fork server is a fresh Python process (started once per pytest
process, which runs nothing but imports): it imports torch and the package,
and every worker is a fork of it. A ``spawn`` worker or a ``python`` child
imported them itself, which cost more than most runs (seconds per process,
several processes per test on a 2-core machine). The workers are still
separate processes, started clean (the fork server never ran a torch
operation, an OpenMP region or a process group); what the tests compare is
unchanged. At least one test per tool entry point still starts the tool as
a real ``python`` subprocess.
"""
import multiprocessing
import os
import os.path as osp
import runpy
import sys
import traceback
from typing import Sequence, Tuple

import torch
import torch.multiprocessing as mp

#: What the fork server imports before forking any worker (a module that
#: cannot be imported here is skipped by multiprocessing).
PRELOAD = [
    'numpy', 'torch', 'torch.distributed', 'mmengine', 'mmengine.model',
    'mmengine.runner', 'faiss', 'mmreid_usl.structures', 'mmreid_usl.models',
    'mmreid_usl.clustering', 'mmreid_usl.datasets', 'mmreid_usl.evaluation',
    'mmreid_usl.engine', 'mmreid_usl.apis', 'tiny_config', 'free_port'
]

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def spawn(fn, args=(), nprocs=1):
    """``torch.multiprocessing.spawn(fn, args, nprocs)`` (joins; raises the
    first worker's error) with the workers forked from the fork server."""
    # effective for the fork server's start (the first call in this process)
    multiprocessing.set_forkserver_preload(PRELOAD)
    return mp.start_processes(
        fn, args=args, nprocs=nprocs, join=True, start_method='forkserver')


def _tool_worker(rank: int, script: str, argv: Sequence[str], env: dict,
                 log_path: str) -> None:
    """``python SCRIPT ARGV...`` from the repository root, in this process,
    with ``env`` added to the environment and stdout and stderr (fds 1 and
    2) written to ``log_path``; its exit status goes to ``log_path.rc``."""
    os.environ.update(env)
    # the thread counts a fresh process takes from OMP_NUM_THREADS
    threads = int(os.environ.get('OMP_NUM_THREADS', '0') or 0)
    if threads > 0:
        torch.set_num_threads(threads)
        try:
            import faiss
            faiss.omp_set_num_threads(threads)
        except ImportError:
            pass
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(REPO)
    sys.argv = [script, *argv]
    sys.path.insert(0, osp.dirname(osp.join(REPO, script)))
    code = 0
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as err:  # what the interpreter does with it
        if err.code is None:
            code = 0
        elif isinstance(err.code, int):
            code = err.code
        else:
            print(err.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: B902 - reported like the interpreter
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path + '.rc', 'w') as f:
        f.write(str(code))


def run_tool(script: str, *argv, env=None, log_path: str) -> Tuple[int, str]:
    """Run ``python SCRIPT ARGV...`` (``script`` relative to the repository
    root) in a worker process; returns ``(exit status, stdout + stderr)``.

    Args:
        script (str): E.g. ``'tools/train.py'``.
        *argv: Its arguments (turned into strings).
        env (dict, optional): Variables added to the environment.
        log_path (str): Where the output is written (a new file).
    """
    spawn(_tool_worker,
          args=(script, [str(a) for a in argv], dict(env or {}), log_path))
    with open(log_path + '.rc') as f:
        code = int(f.read())
    with open(log_path, errors='replace') as f:
        return code, f.read()
