# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses.hard_instance_contrastive_loss import \
    HardInstanceContrastiveLoss


def test_hardest_positive_hand_computed():
    # Anchor 0 of id 0; keys: 0 (id 0, sim 1), 1 (id 0, sim 0.6),
    # 2 (id 1, sim 0.8), 3 (id 1, sim 0). Hardest positive = key 1.
    q = torch.tensor([[1., 0.]]).repeat(4, 1)
    k = torch.stack([
        torch.tensor([1., 0.]),
        torch.tensor([0.6, 0.8]),
        torch.tensor([0.8, 0.6]),
        torch.tensor([0., 1.])
    ])
    y = torch.tensor([0, 0, 1, 1])
    tau = 0.1
    loss_fn = HardInstanceContrastiveLoss(temperature=tau)
    sims = [0.6, 0.8, 0.]
    anchor0 = -(sims[0] / tau - math.log(sum(math.exp(v / tau) for v in sims)))
    # anchor of id 1 (q identical): hardest positive = key 3 (0.0);
    # negatives keys 0 and 1 (1.0, 0.6).
    sims1 = [0., 1., 0.6]
    anchor1 = -(0. - math.log(sum(math.exp(v / tau) for v in sims1)))
    expected = (2 * anchor0 + 2 * anchor1) / 4
    assert loss_fn(q, k, y).item() == pytest.approx(expected, rel=1e-5)


def test_matches_fixed_width_formulation():
    """Equals the official P×K fixed-width construction."""
    torch.manual_seed(0)
    num_p, num_k = 3, 4
    y = torch.arange(num_p).repeat_interleave(num_k)
    q = F.normalize(torch.randn(12, 8), dim=1)
    k = F.normalize(torch.randn(12, 8), dim=1)
    sim = q @ k.t()
    eq = y[None] == y[:, None]
    hard_p = (sim + 9999. * (~eq)).min(1).values
    negs = sim[~eq].view(12, -1)
    logits = torch.cat([hard_p[:, None], negs], 1) / 0.1
    expected = F.cross_entropy(logits, torch.zeros(12, dtype=torch.long))
    loss = HardInstanceContrastiveLoss()(q, k, y)
    assert torch.allclose(loss, expected, atol=1e-5)


def test_gathered_keys_reproduce_full_batch():
    """Per-rank losses against all-gathered keys average to the full one."""
    torch.manual_seed(1)
    y = torch.arange(4).repeat_interleave(4)
    q, k = torch.randn(16, 8), torch.randn(16, 8)
    loss_fn = HardInstanceContrastiveLoss()
    full = loss_fn(q, k, y)
    halves = [loss_fn(q[s], k, y[s], y) for s in (slice(0, 8), slice(8, 16))]
    assert torch.allclose(full, sum(halves) / 2, atol=1e-5)
