# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses.soft_instance_consistency_loss import \
    SoftInstanceConsistencyLoss


def _dists(q, k, w, tau):
    q, k, w = (F.normalize(x, dim=1) for x in (q, k, w))
    p = torch.softmax(q @ k.t() / tau, 1)
    qq = torch.softmax(w @ w.t() / tau, 1)
    return p, qq


def test_kl_direction_q_p():
    torch.manual_seed(0)
    q, k, w = torch.randn(5, 6), torch.randn(5, 6), torch.randn(5, 6)
    p, qd = _dists(q, k, w, 0.4)
    expected = (qd * (qd.log() - p.log())).sum() / 5  # KL(Q||P), batchmean
    other = (p * (p.log() - qd.log())).sum() / 5  # KL(P||Q)
    loss = SoftInstanceConsistencyLoss(loss_weight=1.0)(q, k, w)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert not torch.allclose(loss, other, atol=1e-3)
    paper = SoftInstanceConsistencyLoss(
        direction='p_q', loss_weight=10.)(q, k, w)
    assert torch.allclose(paper, 10 * other, atol=1e-5)


def test_zero_when_distributions_match_and_grad_only_to_query():
    torch.manual_seed(1)
    w = torch.randn(4, 3)
    q = w.clone().requires_grad_(True)
    k = w.clone().requires_grad_(True)
    loss = SoftInstanceConsistencyLoss()(q, k, w)
    assert loss.abs().item() < 1e-6
    loss.backward()
    assert q.grad is not None and k.grad is None


def test_gathered_keys_reproduce_full_batch():
    torch.manual_seed(2)
    q, k, w = torch.randn(8, 6), torch.randn(8, 6), torch.randn(8, 6)
    loss_fn = SoftInstanceConsistencyLoss()
    full = loss_fn(q, k, w)
    halves = [loss_fn(q[s], k, w[s], w) for s in (slice(0, 4), slice(4, 8))]
    assert torch.allclose(full, sum(halves) / 2, atol=1e-5)
