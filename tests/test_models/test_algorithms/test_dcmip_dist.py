# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Two CPU processes (gloo): DCMIP's cluster proxies, instance proxies and
weights stay identical on both ranks, and the proxies equal a one-process
update with the whole (gathered) batch."""
import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from dist_spawn import spawn
from free_port import free_port
from mmengine.dist import broadcast_object_list
from torch.nn.parallel import DistributedDataParallel

from mmreid_usl.models import DCMIP
from mmreid_usl.models.necks.bn_neck import BNNeck
from mmreid_usl.models.utils.reid_encoder import ReIDEncoder
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

DIM = 8
NUM = 32  # training images, 4 clusters of 8


class _Pool(nn.Module):

    def forward(self, x):
        return x.mean((2, 3))


def _model() -> DCMIP:
    torch.manual_seed(0)
    backbone = nn.Sequential(
        nn.Conv2d(3, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.ReLU())
    model = DCMIP(
        encoder=ReIDEncoder(backbone, _Pool(), BNNeck(DIM)),
        instance_memory=dict(type='InstanceProxyMemory', num_instances=4),
        loss_mip=dict(type='MultiInstanceProxyLoss', num_negatives=6),
        ins_start_epoch=0)
    model.init_weights()
    return model


def _result(seed: int) -> PseudoLabelResult:
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(NUM, DIM, generator=g), dim=1)
    return PseudoLabelResult.from_labels(
        torch.arange(NUM) % 4, {'student': feats}, epoch=0)


def _batch(it: int):
    """Global P x K batch of iteration ``it``: 4 clusters x 4 images; rank r
    gets clusters (2r, 2r+1) as the sampler's whole-identity blocks."""
    order = [(0, 1, 2, 3), (2, 3, 1, 0)][it]
    idx = [c + 4 * k for c in order for k in range(it, it + 4)]
    g = torch.Generator().manual_seed(10 + it)
    return idx, torch.randn(len(idx), 3, 8, 4, generator=g)


def _samples(idx):
    return [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in idx]


def _state(model):
    return dict(
        dcp=model.dcp_memory.features.clone(),
        inst=model.instance_memory.features.clone(),
        student={
            k: v.detach().clone()
            for k, v in model.encoder.named_parameters()
        },
        momentum={
            k: v.detach().clone()
            for k, v in model.momentum_encoder.module.named_parameters()
        })


def _eval_bn(model):
    """Train mode, BN in eval mode: features independent of the split."""
    model.train()
    model.encoder.eval()
    model.momentum_encoder.eval()


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(100 + rank)  # ranks draw different random numbers
    try:
        # rank 0's labelling, broadcast (the PseudoLabelHook's way)
        payload = [_result(seed=0) if rank == 0 else _result(seed=rank)]
        broadcast_object_list(payload, src=0)
        result = payload[0]

        # 1. one iteration with split-independent features: the proxies
        #    after the gathered updates equal a one-process full batch
        model = _model()
        model.set_pseudo_labels(result)
        _eval_bn(model)
        idx, inputs = _batch(0)
        half = len(idx) // world
        sl = slice(rank * half, (rank + 1) * half)
        model.loss(inputs[sl], _samples(idx[sl]))
        out[f'eval{rank}'] = _state(model)

        # 2. DDP training (per-rank BN statistics): everything stays
        #    identical on both ranks
        model = _model()
        model.set_pseudo_labels(result)
        model.train()
        ddp = DistributedDataParallel(model, broadcast_buffers=False)
        optim = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=0.01)
        for it in range(2):
            idx, inputs = _batch(it)
            losses = ddp(inputs[sl], _samples(idx[sl]), mode='loss')
            optim.zero_grad()
            sum(losses.values()).backward()
            optim.step()
            model.momentum_update()
        out[f'ddp{rank}'] = _state(model)
        out[f'keys{rank}'] = sorted(losses)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo():
    world = 2
    manager = mp.Manager()
    out = manager.dict()
    spawn(_worker, args=(world, free_port(), out), nprocs=world)
    out = dict(out)
    assert out['keys0'] == out['keys1'] == ['loss_dcp', 'loss_mip']
    for part in ('eval', 'ddp'):
        r0, r1 = out[f'{part}0'], out[f'{part}1']
        assert torch.equal(r0['dcp'], r1['dcp']), part
        assert torch.equal(r0['inst'], r1['inst']), part
        for group in ('student', 'momentum'):
            for key in r0[group]:
                assert torch.equal(r0[group][key], r1[group][key]), key

    # one process, the whole batch: the same proxies
    model = _model()
    model.set_pseudo_labels(_result(seed=0))
    start = model.instance_memory.features.clone()
    _eval_bn(model)
    idx, inputs = _batch(0)
    model.loss(inputs, _samples(idx))
    ref = _state(model)
    torch.testing.assert_close(out['eval0']['dcp'], ref['dcp'])
    torch.testing.assert_close(out['eval0']['inst'], ref['inst'])
    # the batch replaced every cluster's instance proxies
    assert not torch.isclose(ref['inst'], start).all(-1).any()
    # the DDP run trained: weights moved from the initial ones
    init = _state(_model())
    assert any(not torch.equal(init['student'][k], out['ddp0']['student'][k])
               for k in init['student'])
