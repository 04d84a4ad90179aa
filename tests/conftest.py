# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Shared fixtures: a tiny generated Market-layout dataset and tiny configs."""
import gc
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


def pytest_collection_finish(session) -> None:
    """Exempt what is alive after collection (torch, mmengine and every test
    module, alive for the whole session) from the cyclic garbage collector:
    mmengine's ``BaseDataset`` calls ``gc.collect()`` at every dataset build,
    which otherwise scans that heap each time (~0.5 s a call, a sixth of a
    Runner test's time). Only the speed of the collections changes."""
    gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_mmengine_instances():
    """A Runner's MessageHub, logger and Visualizer are global instances
    named after its experiment, ``<config>_<timestamp to the second>``: two
    Runners built in one process within the same second share them (the
    best score of ``save_best``, the iteration counters, the log file of the
    first). Each test starts without the instances of the tests before it.
    MMEngine 0.10.x keeps them in the private ``_instance_dict`` of each
    ``ManagerMixin`` class; no public API removes one."""
    yield
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.visualization import Visualizer
    classes = [MessageHub, MMLogger, Visualizer]
    while classes:
        cls = classes.pop()
        cls.__dict__.get('_instance_dict', {}).clear()
        classes.extend(cls.__subclasses__())


@pytest.fixture(autouse=True, scope='session')
def _config_text_without_yapf():
    """mmengine formats the config text with yapf each time a Runner logs or
    dumps its config and each time it saves a checkpoint (``meta.cfg``):
    ~0.3 s a call, a third of a Runner test's time. In the tests the text
    stays the same Python, unformatted (``Config.pretty_text`` otherwise
    unchanged; ``tools/misc/print_config.py`` and real runs still format).
    Subprocesses of the slow tests format as users' runs do."""
    from mmengine.config import config as mm_config
    original = mm_config.FormatCode
    mm_config.FormatCode = lambda text, **kwargs: (text, False)
    yield
    mm_config.FormatCode = original


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
