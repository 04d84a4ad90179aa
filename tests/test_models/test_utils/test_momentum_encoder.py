# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch
import torch.nn as nn

from mmreid_usl.models.utils.momentum_encoder import MomentumEncoder


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))


def test_one_step_is_ema_and_no_grad():
    student = _net()
    ema = MomentumEncoder(student, momentum=0.001)
    ema.sync(student)
    assert all(not p.requires_grad for p in ema.parameters())
    old = {k: v.clone() for k, v in ema.module.named_parameters()}
    opt = torch.optim.SGD(student.parameters(), lr=1.0)
    out = student(torch.randn(8, 4)).sum() + ema(torch.randn(8, 4)).sum()
    out.backward()
    assert all(p.grad is None for p in ema.parameters())
    opt.step()
    ema.update_parameters(student)
    alpha = 0.999
    for name, p in ema.module.named_parameters():
        expect = alpha * old[name] + (1 - alpha) * dict(
            student.named_parameters())[name].detach()
        assert torch.allclose(p, expect, atol=1e-7), name


def test_own_bn_buffers_evolve_from_own_forward():
    student = _net()
    ema = MomentumEncoder(student, momentum=0.5)
    ema.sync(student)
    ema.train()
    student(torch.randn(16, 4) * 3 + 2)  # changes student's BN stats
    before = ema.module[1].running_mean.clone()
    ema.update_parameters(student)
    # 'own': BN buffers are not copied from the student ...
    assert torch.equal(ema.module[1].running_mean, before)
    # ... but evolve from the momentum encoder's own train-mode forwards.
    with torch.no_grad():
        ema(torch.randn(16, 4) + 5)
    assert not torch.equal(ema.module[1].running_mean, before)
    copy = MomentumEncoder(student, buffer_mode='copy')
    copy.update_parameters(student)
    assert torch.equal(copy.module[1].running_mean, student[1].running_mean)


def test_checkpoint_roundtrip_exact():
    student = _net()
    ema = MomentumEncoder(student, momentum=0.1)
    ema.sync(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.)
        ema(torch.randn(8, 4))
    ema.update_parameters(student)
    state = ema.state_dict()
    assert 'steps' in state and 'module.1.running_mean' in state
    other = MomentumEncoder(_net(), momentum=0.1)
    other.load_state_dict(state)
    for k, v in ema.state_dict().items():
        assert torch.equal(v, other.state_dict()[k]), k
