# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Two CPU processes (gloo): ShuffleBN across ranks, identical proxies, and
DDP-gathered ICE losses equal to the single-process full-batch losses."""
import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from dist_spawn import spawn
from free_port import free_port
from mmengine.dist import broadcast_object_list

from mmreid_usl.models.algorithms.ice import ICE
from mmreid_usl.models.necks.bn_neck import BNNeck
from mmreid_usl.models.utils.batch_shuffle import shuffle_bn_forward
from mmreid_usl.models.utils.reid_encoder import ReIDEncoder
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

DIM = 8


class _Pool(torch.nn.Module):

    def forward(self, x):
        return x.mean((2, 3))


def _model() -> ICE:
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(
        torch.nn.Conv2d(3, DIM, 3, padding=1), torch.nn.BatchNorm2d(DIM),
        torch.nn.ReLU())
    model = ICE(encoder=ReIDEncoder(backbone, _Pool(), BNNeck(DIM)))
    model.init_weights()
    return model


def _result(seed: int):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(24) % 4
    feats = F.normalize(torch.randn(24, DIM, generator=gen), dim=1)
    return PseudoLabelResult.from_labels(
        labels, dict(momentum=feats), camids=torch.arange(24) % 3)


def _batch():
    """A P x K batch (4 ids x 4) of the 24-sample training set."""
    idx = [i for c in range(4) for i in range(c, 24, 4)[:4]]
    gen = torch.Generator().manual_seed(7)
    inputs = torch.randn(3, len(idx), 3, 8, 4, generator=gen)
    return idx, inputs


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    torch.manual_seed(100 + rank)  # ranks draw different permutations
    try:
        # 1. ShuffleBN across ranks: outputs stay aligned with the inputs and
        #    the module sees samples of the other rank.
        x = torch.arange(8.).view(8, 1) + 100 * rank
        seen = []

        def record(t):
            seen.append(t.clone())
            return t * 2

        y = shuffle_bn_forward(record, x, num_groups=2)
        out[f'aligned{rank}'] = bool(torch.equal(y, x * 2))
        mixed = torch.cat(seen).flatten()
        out[f'mixed{rank}'] = bool(((mixed >= 100) != (rank == 1)).any())

        # 2. Rank 0's clustering broadcast -> identical proxies on all ranks.
        model = _model()
        payload = [_result(seed=0) if rank == 0 else _result(seed=rank)]
        broadcast_object_list(payload, src=0)
        model.set_pseudo_labels(payload[0])
        mem = model.proxy_memory
        out[f'proxies{rank}'] = mem.proxies.clone()
        out[f'centroids{rank}'] = mem.centroids.clone()

        # 3. Per-rank losses with all-gathered keys average to the full-batch
        #    loss (momentum encoder in eval mode, so BN grouping is moot).
        idx, inputs = _batch()
        half = len(idx) // world
        sl = slice(rank * half, (rank + 1) * half)
        samples = [
            ReIDDataSample(metainfo=dict(sample_idx=i, camid=i % 3))
            for i in idx[sl]
        ]
        model.train()
        model.encoder.eval()
        model.momentum_encoder.eval()
        losses = model.loss(inputs[:, sl], samples)
        out[f'losses{rank}'] = {k: v.item() for k, v in losses.items()}

        # 4. Momentum BN statistics evolve per rank, then are averaged.
        model.momentum_encoder.train()
        model.momentum_forward(inputs[0, sl] + rank)
        bn = model.momentum_encoder.module.backbone[1]
        out[f'bn_before{rank}'] = bn.running_mean.clone()
        model.momentum_update()
        out[f'bn_after{rank}'] = bn.running_mean.clone()
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo():
    world = 2
    manager = mp.Manager()
    out = manager.dict()
    spawn(_worker, args=(world, free_port(), out), nprocs=world)
    out = dict(out)
    assert out['aligned0'] and out['aligned1']
    assert out['mixed0'] or out['mixed1']
    assert torch.equal(out['proxies0'], out['proxies1'])
    assert torch.equal(out['centroids0'], out['centroids1'])
    assert not torch.equal(out['bn_before0'], out['bn_before1'])
    assert torch.allclose(out['bn_after0'], out['bn_after1'])
    assert torch.allclose(out['bn_after0'],
                          (out['bn_before0'] + out['bn_before1']) / 2)

    # single-process reference on the full batch
    model = _model()
    model.set_pseudo_labels(_result(seed=0))
    idx, inputs = _batch()
    samples = [
        ReIDDataSample(metainfo=dict(sample_idx=i, camid=i % 3)) for i in idx
    ]
    model.train()
    model.encoder.eval()
    model.momentum_encoder.eval()
    full = model.loss(inputs, samples)
    for key, value in full.items():
        mean = (out['losses0'][key] + out['losses1'][key]) / 2
        assert mean == pytest.approx(float(value.detach()), rel=1e-4), key
