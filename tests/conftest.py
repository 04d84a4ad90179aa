# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Shared fixtures: a tiny generated Market-layout dataset and tiny configs."""
import os
import os.path as osp

import pytest

if os.environ.get('PYTEST_XDIST_WORKER'):
    # Under pytest-xdist (``-n N``) the N worker processes share the cores:
    # one torch / OpenMP thread each, set before torch, numpy or faiss load
    # here (the variable also reaches the subprocesses the tests start). A
    # serial run keeps its thread counts.
    os.environ['OMP_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

from tiny_config import tiny_cfg  # noqa: E402

os.environ.setdefault('OMP_NUM_THREADS', '1')


@pytest.fixture(scope='session')
def tiny_reid_root(tmp_path_factory) -> str:
    """16 train / 8 test synthetic identities, 32x16 images (~250 files)."""
    from mmreid_usl.datasets.synthetic import generate_synthetic_pedestrians
    root = str(tmp_path_factory.mktemp('tiny_reid'))
    generate_synthetic_pedestrians(
        root, num_train_ids=16, num_test_ids=8, height=32, width=16, seed=0)
    return root


@pytest.fixture
def restore_environ():
    """Put ``os.environ`` back as it was before the test: for code under test
    that writes it itself, not through ``monkeypatch`` (the tools'
    ``parse_tool_args`` sets ``LOCAL_RANK`` when it is unset), so that no
    variable reaches the tests that run next in this process."""
    saved = dict(os.environ)
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture
def make_tiny_cfg():
    """Return :func:`tiny_cfg`."""
    return tiny_cfg


REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
