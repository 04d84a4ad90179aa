# Copyright (c) mmreid_usl contributors. All rights reserved.
import os

import pytest
import torch
from mmengine.fileio import LocalBackend

from mmreid_usl.engine.checkpointing.resume import find_resume_checkpoint
from mmreid_usl.engine.runner import ReIDRunner


class _Killed(Exception):
    """Stands for the run being killed in the middle of a write."""


def test_a_failed_save_keeps_the_previous_checkpoint(tiny_reid_root,
                                                     make_tiny_cfg, tmp_path,
                                                     monkeypatch):
    work = str(tmp_path / 'work')
    cfg = make_tiny_cfg(tiny_reid_root, work, max_epochs=1, iters=1)
    runner = ReIDRunner.from_cfg(cfg)
    runner.train()
    ckpt = os.path.join(work, 'epoch_1.pth')
    before = open(ckpt, 'rb').read()
    assert sorted(f for f in os.listdir(work) if 'partial' in f) == []
    assert open(os.path.join(work, 'last_checkpoint')).read().endswith(
        'epoch_1.pth')

    def half_then_die(self, obj, filepath):
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise _Killed

    monkeypatch.setattr(LocalBackend, 'put', half_then_die)
    # the same name (a re-save) and a new one (the next epoch)
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        with pytest.raises(_Killed):
            runner.save_checkpoint(work, name)
    # MMEngine alone would leave epoch_1.pth truncated and a truncated
    # epoch_2.pth that --resume would pick first
    assert open(ckpt, 'rb').read() == before
    assert sorted(os.listdir(work)).count('epoch_2.pth') == 0
    assert [f for f in os.listdir(work) if 'partial' in f] == []
    assert find_resume_checkpoint(work) == ckpt
    assert torch.load(ckpt, map_location='cpu')['meta']['epoch'] == 1


def test_a_remote_backend_is_written_as_mmengine_does(monkeypatch):
    calls = []
    monkeypatch.setattr(
        'mmengine.runner.Runner.save_checkpoint',
        lambda self, out_dir, filename, **kw: calls.append(
            (out_dir, filename)))
    # e.g. a PetrelBackend for s3:// (not installed here): anything that is
    # not a LocalBackend has no rename, so it gets MMEngine's direct write
    monkeypatch.setattr(
        'mmreid_usl.engine.runner.reid_runner.get_file_backend',
        lambda path, backend_args=None: object())
    runner = ReIDRunner.__new__(ReIDRunner)
    runner.save_checkpoint('s3://bucket/run', 'epoch_3.pth')
    assert calls == [('s3://bucket/run', 'epoch_3.pth')]


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CPU run')
def test_the_environment_log_of_a_cpu_run_names_no_gpu_and_no_nccl(
        tiny_reid_root, make_tiny_cfg, tmp_path):
    """Issue 24 case 12: a CPU run logged ``GPU number: 1`` and the unused
    ``dist_cfg: {'backend': 'nccl'}`` as its runtime environment."""
    cfg = make_tiny_cfg(tiny_reid_root, str(tmp_path / 'work'),
                        max_epochs=1, iters=1)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'))
    cfg.log_level = 'INFO'
    runner = ReIDRunner.from_cfg(cfg)
    with open(os.path.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    env = log.split('Runtime environment:')[1].split('-' * 60)[0]
    assert 'GPU number' not in env and 'nccl' not in env
    assert 'Device: cpu' in env and 'Processes: 1' in env
    assert 'Distributed training: False' in env and 'seed: ' in env
    assert runner.runtime_env(dict(dist_cfg=dict(backend='nccl'))).get(
        'dist_cfg') is None
