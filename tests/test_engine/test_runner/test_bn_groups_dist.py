# Copyright (c) mmreid_usl contributors. All rights reserved.
"""One process with 4 BN groups == 4 gloo processes on the same batch."""
import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from dist_spawn import spawn
from free_port import free_port
from mmengine.model import MMDistributedDataParallel

from mmreid_usl.models import ClusterContrast
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

from tiny_config import tiny_model

WORLD, PER_RANK, GROUP = 4, 16, 16  # 64 images = 4 x 16, BN groups of 16


def _model() -> ClusterContrast:
    torch.manual_seed(0)
    cfg = tiny_model()
    cfg.pop('type')
    model = ClusterContrast(**cfg, bn_group_size=GROUP)
    feats = F.normalize(torch.randn(64, 64, generator=torch.Generator().
                                    manual_seed(1)), dim=1)
    model.set_pseudo_labels(
        PseudoLabelResult.from_labels(torch.arange(64) // 4, feats))
    return model.train()


def _batch():
    gen = torch.Generator().manual_seed(2)
    return torch.randn(WORLD * PER_RANK, 3, 32, 16, generator=gen)


def _samples(lo, hi):
    return [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in range(lo, hi)]


def _step(model, inputs, samples):
    """One SGD step; returns the features and the loss."""
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    feats = model.module.student_forward(inputs) if hasattr(
        model, 'module') else model.student_forward(inputs)
    losses = model(inputs, samples, mode='loss')
    optim.zero_grad()
    losses['loss_cluster'].backward()
    optim.step()
    return feats.detach(), float(losses['loss_cluster'])


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    try:
        model = MMDistributedDataParallel(
            _model(), device_ids=None, broadcast_buffers=False)
        sl = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        feats, loss = _step(model, _batch()[sl],
                            _samples(sl.start, sl.stop))
        out[f'feats{rank}'] = feats
        out[f'loss{rank}'] = loss
        out[f'state{rank}'] = {
            k: v.detach().clone()
            for k, v in model.module.state_dict().items()
        }
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_one_process_with_bn_groups_equals_four_processes():
    manager = mp.Manager()
    out = manager.dict()
    spawn(_worker, args=(free_port(), out), nprocs=WORLD)
    out = dict(out)
    single = _model()
    feats, loss = _step(single, _batch(), _samples(0, WORLD * PER_RANK))
    # same BN batch statistics: the features of the 4 groups are those of
    # the 4 processes (computed before the step, same weights)
    torch.testing.assert_close(
        feats, torch.cat([out[f'feats{r}'] for r in range(WORLD)]))
    # same loss (mean of the per-rank means) and the same weights, memory
    # and BN running statistics after the step
    assert loss == pytest.approx(
        sum(out[f'loss{r}'] for r in range(WORLD)) / WORLD, rel=1e-5)
    state = single.state_dict()
    for r in range(WORLD):
        for key, value in out[f'state{r}'].items():
            if 'running' in key or 'num_batches' in key:
                continue  # per-rank BN buffers: averaged per epoch by a hook
            torch.testing.assert_close(value, state[key], msg=key)
    # the BN groups matter: one group over the whole batch differs
    whole = _model()
    whole.bn_group_size = None
    assert not torch.allclose(whole.student_forward(_batch()), feats)
