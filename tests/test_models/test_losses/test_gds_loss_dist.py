# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Two CPU processes (gloo): the GDS global statistics are identical on both
ranks and equal to one process holding both ranks' pairs; the DDP-averaged
gradient equals that process's gradient."""
import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from dist_spawn import spawn
from free_port import free_port
from torch.nn.parallel import DistributedDataParallel as DDP

from mmreid_usl.models.losses import GDSLoss

BETA, STEPS, LAMBDA_H = 0.8, 4, 0.5


def _linear() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(6, 5, bias=False).double()


def _data(rank: int, step: int):
    """A 3 ids x 4 batch, different on every rank and step."""
    g = torch.Generator().manual_seed(1000 * rank + step)
    labels = torch.arange(3).repeat_interleave(4)
    centres = torch.randn(3, 6, generator=g, dtype=torch.float64)
    x = centres[labels] + 0.6 * torch.randn(
        12, 6, generator=g, dtype=torch.float64)
    return x, labels


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        lin = _linear()
        ddp = DDP(lin)
        loss = GDSLoss(old_weight=BETA, lambda_h=LAMBDA_H,
                       check_sync=True).double().train()
        opt = torch.optim.SGD(lin.parameters(), lr=0.5)
        records = []
        for step in range(STEPS):
            x, y = _data(rank, step)
            res = loss(ddp(x), y)
            total = res['loss_gds'] + res['loss_gds_h']
            opt.zero_grad()
            total.backward()
            records.append(
                dict(
                    stats=torch.stack([
                        loss.mean_pos, loss.var_pos, loss.mean_neg,
                        loss.var_neg
                    ]).clone(),
                    loss=float(total),
                    grad=lin.weight.grad.clone()))
            opt.step()
        out[rank] = records
        # check_sync catches ranks that disagree
        if rank == 1:
            loss.mean_pos += 1e-6
        try:
            loss._check_sync()
            out[f'caught{rank}'] = False
        except RuntimeError as err:
            out[f'caught{rank}'] = 'differ' in str(err)
    finally:
        torch_dist.destroy_process_group()


def _reference():
    """One process: statistics from the pairs of both ranks' batches (pairs
    within each batch), the formulas of GDSLoss written out, autograd."""
    lin = _linear()
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    # the loss's buffers are float32 (cast to float64 by .double())
    mp_, vp, mn, vn = [torch.tensor(v).double() for v in (0.5, 1 / 6, 0.5,
                                                          1 / 6)]
    records = []
    for step in range(STEPS):
        pos, neg = [], []
        for rank in range(2):
            x, y = _data(rank, step)
            f = F.normalize(lin(x), dim=1)
            d = (1 - f @ f.t()) / 2
            iu = torch.triu_indices(12, 12, 1)
            same = y[iu[0]] == y[iu[1]]
            dd = d[iu[0], iu[1]]
            pos.append(dd[same])
            neg.append(dd[~same])
        pos, neg = torch.cat(pos), torch.cat(neg)
        new_mp = BETA * mp_ + (1 - BETA) * pos.mean()
        new_vp = BETA * vp + (1 - BETA) * ((pos - mp_)**2).mean()
        new_mn = BETA * mn + (1 - BETA) * neg.mean()
        new_vn = BETA * vn + (1 - BETA) * ((neg - mn)**2).mean()
        l_gds = F.softplus(new_mp - new_mn) + (new_vp + new_vn)
        l_h = F.softplus((new_mp + 3 * new_vp.sqrt()) -
                         (new_mn - 3 * new_vn.sqrt()))
        total = l_gds + LAMBDA_H * l_h
        opt.zero_grad()
        total.backward()
        mp_, vp, mn, vn = (
            t.detach() for t in (new_mp, new_vp, new_mn, new_vn))
        records.append(
            dict(
                stats=torch.stack([mp_, vp, mn, vn]),
                loss=float(total),
                grad=lin.weight.grad.clone()))
        opt.step()
    return records


@pytest.mark.slow
def test_two_process_global_statistics():
    manager = mp.Manager()
    out = manager.dict()
    spawn(_worker, args=(2, free_port(), out), nprocs=2)
    ref = _reference()
    assert out['caught0'] and out['caught1']
    for step in range(STEPS):
        r0, r1 = out[0][step], out[1][step]
        # bit-identical on both ranks (the loss checks it too: check_sync)
        assert torch.equal(r0['stats'], r1['stats'])
        assert r0['loss'] == r1['loss']
        torch.testing.assert_close(r0['grad'], r1['grad'])
        # equal to one process with all pairs
        torch.testing.assert_close(r0['stats'], ref[step]['stats'],
                                   rtol=1e-10, atol=1e-12)
        assert r0['loss'] == pytest.approx(ref[step]['loss'], rel=1e-10)
        torch.testing.assert_close(r0['grad'], ref[step]['grad'],
                                   rtol=1e-8, atol=1e-12)
    # the statistics moved from the initialisation
    assert not torch.allclose(ref[-1]['stats'][0],
                              torch.tensor(0.5, dtype=torch.float64))
