# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/train.py and tools/test.py end to end: training and its resume
through subprocess (as a user runs them); the test of the trained model and
a run refused at the start through the tools' ``main()`` in this process
(``tools/test.py`` runs in a subprocess in test_test_rerank.py)."""
import glob
import importlib.util
import json
import traceback
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from free_port import free_port

from tiny_config import tiny_cfg

from mmreid_usl.engine.checkpointing import (release_work_dir,  # noqa: E402
                                             setup_runtime)

# this process reads the checkpoints the trainings write (weights-only)
setup_runtime()

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, *args],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=timeout,
                          env=env)
    return proc


def _main(tool, monkeypatch, *argv):
    """Run ``tools/<tool>``'s ``main()`` in this process with ``argv``."""
    spec = importlib.util.spec_from_file_location(
        f'tools_{tool[:-3]}', osp.join(REPO, 'tools', tool))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr('sys.argv', [f'tools/{tool}', *map(str, argv)])
    return module.main()


@pytest.fixture(scope='module')
def config_file(tiny_reid_root, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('cfg') / 'tiny_cc.py')
    cfg = tiny_cfg(tiny_reid_root, 'unused', max_epochs=2, with_val=True)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict()
    cfg.custom_hooks = [dict(type='ValBeforeTrainHook')]
    cfg.log_level = 'INFO'
    cfg.pop('work_dir')
    cfg.dump(path)
    return path


@pytest.mark.slow
def test_train_resume_test(config_file, tmp_path, monkeypatch, capfd,
                           restore_environ):
    work = str(tmp_path / 'work')
    proc = _tool('tools/train.py', config_file, '--work-dir', work,
                 '--cfg-options', 'train_cfg.max_epochs=1')
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    log = proc.stdout + proc.stderr
    assert 'Epoch(val) [0]' in log  # mAP at initialisation
    assert 'Pseudo-labels at epoch 0' in log
    assert 'Initialisation vs final: reid/mAP:' in log

    # --resume picks up the last checkpoint and continues at epoch 2
    proc = _tool('tools/train.py', config_file, '--work-dir', work,
                 '--resume')
    assert proc.returncode == 0, proc.stderr[-4000:]
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1' in log
    assert 'Pseudo-labels at epoch 1' in log
    assert 'Epoch(val) [0]' not in log
    # no second init evaluation, but the init metrics come from the
    # checkpoint, so the comparison line is still there
    assert 'Initialisation vs final: reid/mAP:' in log
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu')
    assert ckpt['meta']['epoch'] == 2

    out = str(tmp_path / 'metrics.json')
    before = sorted(os.listdir(work))
    dump = osp.join(work, 'tiny_cc.py')
    with open(dump) as f:
        train_config = f.read()
    capfd.readouterr()
    _main('test.py', monkeypatch, config_file, osp.join(work, 'epoch_2.pth'),
          '--work-dir', work, '--out', out)
    log = ''.join(capfd.readouterr())
    # issue 24 case 12: the test adds only test/ (its log folder and config
    # dump are in there); the training run's config dump is unchanged
    assert sorted(os.listdir(work)) == sorted(set(before) | {'test'})
    with open(dump) as f:
        assert f.read() == train_config
    assert osp.isfile(osp.join(work, 'test', 'tiny_cc.py'))
    assert any(osp.isdir(osp.join(work, 'test', d))
               for d in os.listdir(osp.join(work, 'test')))
    metrics = json.load(open(out))
    assert set(metrics) == {
        'reid/mAP', 'reid/R1', 'reid/R5', 'reid/R10', 'reid/mINP'
    }
    assert 0 < metrics['reid/mAP'] <= 100
    assert 'reid/mAP' in log


def test_bad_dataset_root_names_the_path(config_file, tmp_path, monkeypatch,
                                         restore_environ):
    missing = str(tmp_path / 'no_such_dataset')
    work = tmp_path / 'w'
    with pytest.raises(BaseException) as err:
        _main('train.py', monkeypatch, config_file, '--work-dir', work,
              '--cfg-options',
              f'train_dataloader.dataset.data_root={missing}')
    release_work_dir(str(work))  # held by this process until it ends
    # a failure (not a clean exit) whose report names the path
    assert not (isinstance(err.value, SystemExit)
                and err.value.code in (0, None))
    assert missing in ''.join(traceback.format_exception(err.value))


@pytest.mark.slow
def test_dist_train_script_on_cpu(config_file, tmp_path):
    # One retry on a fresh port: the gloo rendezvous of torch.distributed.run
    # can fail transiently on a busy CI host; both outputs are reported.
    outputs = []
    for attempt in range(2):
        work = str(tmp_path / f'dist{attempt}')
        env = dict(
            os.environ,
            OMP_NUM_THREADS='1',
            PORT=str(free_port()),
            PYTHON=sys.executable)
        proc = subprocess.run([
            'bash', 'tools/dist_train.sh', config_file, '2', '--work-dir',
            work, '--cfg-options', 'train_cfg.max_epochs=1',
            'custom_hooks=[]'
        ],
                              cwd=REPO,
                              capture_output=True,
                              text=True,
                              timeout=300,
                              env=env)
        outputs.append(proc.stdout[-3000:] + proc.stderr[-3000:])
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, '\n----\n'.join(outputs)
    assert glob.glob(osp.join(work, 'epoch_1.pth'))
    assert 'Pseudo-labels at epoch 0' in proc.stdout + proc.stderr
