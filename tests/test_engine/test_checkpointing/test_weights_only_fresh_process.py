# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Every path that loads a checkpoint installs the weights-only allow-list
itself: in a fresh process (importing ``mmreid_usl`` registers nothing), a
checkpoint saved by our Runner, with numpy scalars and MMEngine objects in
it, loads through each of them without calling anything else first."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmreid_usl.registry import RUNNERS
from mmreid_usl.utils import register_all_modules
from tiny_config import tiny_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

#: Each loading path, as a fresh process runs it: ``{cfg}``, ``{ckpt}`` and
#: ``{out}`` are filled in; it prints ``OK`` when the checkpoint loaded.
LOADING_PATHS = {
    'init_model': (
        'from mmreid_usl.apis import init_model\n'
        "model = init_model({cfg!r}, {ckpt!r})\n"
        "print('OK', type(model).__name__)\n"),
    'ReIDInferencer': (
        'from mmreid_usl.apis import ReIDInferencer\n'
        "ReIDInferencer({cfg!r}, pretrained={ckpt!r}, device='cpu')\n"
        "print('OK')\n"),
    'publish_model': (
        'import runpy, sys\n'
        "sys.argv = ['publish_model.py', {ckpt!r}, {out!r}]\n"
        "runpy.run_path('tools/model_converters/publish_model.py',\n"
        "               run_name='__main__')\n"
        "print('OK')\n"),
}


@pytest.fixture(scope='module')
def runner_checkpoint(tiny_reid_root, tmp_path_factory):
    """(config file, checkpoint) written by ``ReIDRunner.save_checkpoint``."""
    register_all_modules()
    work = tmp_path_factory.mktemp('fresh_process')
    cfg = tiny_cfg(tiny_reid_root, str(work / 'run'), with_val=True)
    cfg.runner_type = 'ReIDRunner'
    # the inferencer reads the test pipeline
    cfg.update(test_dataloader=cfg.val_dataloader,
               test_evaluator=cfg.val_evaluator,
               test_cfg=dict())
    cfg_file = str(work / 'tiny.py')
    cfg.dump(cfg_file)
    runner = RUNNERS.build(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    # what a training run logs and keeps: numpy scalars, HistoryBuffers
    runner.message_hub.update_scalar('train/loss', 1.5)
    runner.message_hub.update_scalar('train/pseudo_label/num_clusters',
                                     np.int64(2))
    runner.save_checkpoint(
        str(work), 'epoch_1.pth', meta=dict(best_score=np.float64(0.5)))
    return cfg_file, str(work / 'epoch_1.pth')


@pytest.mark.slow  # one fresh Python process per loading path
@pytest.mark.parametrize('path', sorted(LOADING_PATHS))
def test_runner_checkpoint_loads_in_a_fresh_process(runner_checkpoint,
                                                    tmp_path, path):
    cfg_file, ckpt = runner_checkpoint
    code = LOADING_PATHS[path].format(
        cfg=cfg_file, ckpt=ckpt, out=str(tmp_path / 'published.pth'))
    proc = subprocess.run([sys.executable, '-c', code],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'OK' in proc.stdout
