# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The rendezvous port of the tests' torch.distributed runs (gloo on CPU).

Every test that starts a process group (``dist_spawn.spawn`` workers with
``MASTER_PORT``, ``python -m torch.distributed.run --master_port``,
``tools/dist_train.sh`` with ``PORT``) takes its port from :func:`free_port`,
never a fixed one such as 29500: the suite runs under pytest-xdist, where two
workers start process groups at the same time.
"""
import os
import socket


def _xdist_worker():
    """``(index, count)`` of this pytest-xdist worker; ``(0, 1)`` outside
    xdist."""
    worker = os.environ.get('PYTEST_XDIST_WORKER', '')
    count = os.environ.get('PYTEST_XDIST_WORKER_COUNT', '')
    if not (worker.startswith('gw') and worker[2:].isdigit()
            and count.isdigit() and int(count) > 1):
        return 0, 1
    return int(worker[2:]) % int(count), int(count)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that no socket holds now, picked by the OS
    (bind to port 0).

    The port is free when this returns; the run binds it a moment later.
    The OS may give the same free port to two processes that ask within that
    moment, so under pytest-xdist each worker only returns its own share of
    the ports (worker ``gwK`` of ``N``: ``(port // 2) % N == K``; by pairs,
    as Linux hands out odd ports to ``bind`` and even ones to ``connect``):
    two workers never pick the same port.

    Returns:
        int: The port.
    """
    index, count = _xdist_worker()
    port = None
    for _ in range(1000):
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        if (port // 2) % count == index:
            break
    return port
