# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``tools/test.py`` keeps out of the training run's files (issue 24, case
12): it used to add a timestamped log folder to the training work dir and
replace its config dump on every call."""
import argparse
import importlib.util
import os.path as osp

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _test_tool():
    spec = importlib.util.spec_from_file_location(
        'tools_test', osp.join(REPO, 'tools', 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _merge(work_dir=None, cfg_work_dir=None):
    args = argparse.Namespace(
        config='configs/cluster_contrast/cc_tiny.py', checkpoint='c.pth',
        work_dir=work_dir, encoder=None, cfg_options=None,
        launcher='none', rerank=False)
    cfg = dict(default_hooks=dict(checkpoint=dict(
        type='WorkDirCheckpointHook', interval=1)), model=dict(),
        test_evaluator=dict(type='ReIDMetric'))
    if cfg_work_dir is not None:
        cfg['work_dir'] = cfg_work_dir
    return _test_tool().merge_args(Config(cfg), args)


def test_the_test_writes_into_the_test_subfolder_of_the_work_dir():
    # default: the training work dir of the config, as mmpretrain's, but
    # its test/ subfolder
    assert _merge().work_dir == osp.join('./work_dirs', 'cc_tiny', 'test')
    assert _merge(work_dir='runs/a').work_dir == osp.join('runs/a', 'test')
    assert _merge(cfg_work_dir='runs/b').work_dir == osp.join(
        'runs/b', 'test')


def test_the_test_takes_no_checkpoint_hook():
    # no checkpoint saving, and so no training lock on the work dir
    assert _merge().default_hooks.checkpoint is None
