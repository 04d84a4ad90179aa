# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``tools/test.py --rerank``: the flag reaches the evaluator and ``--out``
holds the re-ranked metrics."""
import argparse
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from dist_spawn import run_tool
from mmengine.config import Config

from tiny_config import tiny_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _test_tool():
    spec = importlib.util.spec_from_file_location(
        'tools_test', osp.join(REPO, 'tools', 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(**kw):
    args = dict(work_dir='w', checkpoint='c.pth', encoder=None,
                cfg_options=None, launcher='none', rerank=False)
    args.update(kw)
    return argparse.Namespace(config='x.py', **args)


def test_merge_args_sets_rerank(tmp_path):
    tool = _test_tool()

    def cfg():
        return Config(dict(default_hooks=dict(), model=dict(),
                           test_evaluator=dict(type='ReIDMetric')))

    assert tool.merge_args(cfg(), _args(rerank=True)).test_evaluator.rerank
    assert 'rerank' not in tool.merge_args(cfg(), _args()).test_evaluator
    listed = Config(dict(default_hooks=dict(), model=dict(),
                         test_evaluator=[dict(type='ReIDMetric')] * 2))
    out = tool.merge_args(listed, _args(rerank=True))
    assert all(e['rerank'] is True for e in out.test_evaluator)


@pytest.mark.slow
def test_test_tool_rerank_out(tiny_reid_root, tmp_path):
    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = tiny_cfg(tiny_reid_root, 'unused', with_val=True)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict()
    cfg.log_level = 'INFO'
    cfg.pop('work_dir')
    config = str(tmp_path / 'tiny.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    results, logs = {}, {}
    for flag in ([], ['--rerank']):
        out = str(tmp_path / f'm{len(flag)}.json')
        args = [config, ckpt, '--work-dir', str(tmp_path / 'work'), '--out',
                out, *flag]
        if flag:  # a real ``python tools/test.py`` subprocess
            proc = subprocess.run([sys.executable, 'tools/test.py', *args],
                                  cwd=REPO, capture_output=True, text=True,
                                  timeout=300, env=env)
            code, log = proc.returncode, proc.stdout + proc.stderr
        else:  # the same in a process forked from the fork server
            code, log = run_tool('tools/test.py', *args,
                                 env=dict(OMP_NUM_THREADS='1'),
                                 log_path=str(tmp_path / 'plain.log'))
        assert code == 0, log[-4000:]
        results[len(flag)] = json.load(open(out))
        logs[len(flag)] = log
    assert 'reid/mAP' in logs[0]  # the log was read
    assert set(results[1]) == {
        'reid/mAP', 'reid/R1', 'reid/R5', 'reid/R10', 'reid/mINP'
    }
    assert 'ReID results (re-ranked)' in logs[1]
    assert 'k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)' in logs[1]
    assert 're-ranked' not in logs[0]
    assert results[1]['reid/mAP'] != pytest.approx(results[0]['reid/mAP'])
