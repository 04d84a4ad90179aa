# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import DiscrepantClusterNCELoss

# q = e1, label 0; proxy type 1 = identity (positive e1), proxy type 2 =
# swapped (positive e2): at tau = 1 the two ClusterNCE terms are
# log(1 + e^-1) and log(1 + e).
Q = torch.tensor([[1., 0.]])
Y = torch.tensor([0])
P = torch.tensor([[[1., 0.], [0., 1.]], [[0., 1.], [1., 0.]]])
L1 = math.log(1 + math.exp(-1))  # 0.313262
L2 = math.log(1 + math.e)  # 1.313262


def test_mean_form_hand_computed():
    loss = DiscrepantClusterNCELoss(temperature=1.0)(Q, P, Y)
    assert float(loss) == pytest.approx((L1 + L2) / 2, abs=1e-6)
    assert float(loss) == pytest.approx(0.813262, abs=1e-6)


def test_hybrid_form_hand_computed():
    hybrid = DiscrepantClusterNCELoss(temperature=1.0, mode='hybrid')
    # 0.5 * (relu(L1 - 0.2) + L2)
    assert float(hybrid(Q, P, Y)) == pytest.approx(
        0.5 * (L1 - 0.2 + L2), abs=1e-6)
    assert float(hybrid(Q, P, Y)) == pytest.approx(0.713262, abs=1e-6)
    # the relu clips the margin term to 0
    clipped = DiscrepantClusterNCELoss(
        temperature=1.0, mode='hybrid', margin=0.5)
    assert float(clipped(Q, P, Y)) == pytest.approx(0.5 * L2, abs=1e-6)
    # the margin on the other proxy type: 0.5 * (L1 + relu(L2 - 0.2))
    other = DiscrepantClusterNCELoss(
        temperature=1.0, mode='hybrid', margin_index=1)
    assert float(other(Q, P, Y)) == pytest.approx(
        0.5 * (L1 + L2 - 0.2), abs=1e-6)


def test_batch_and_temperature_against_formula():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    proxies = F.normalize(torch.randn(3, 5, 8, generator=g), dim=2)
    y = torch.randint(0, 5, (6, ), generator=g)
    terms = [F.cross_entropy(q @ proxies[m].t() / 0.05, y) for m in range(3)]
    loss = DiscrepantClusterNCELoss(loss_weight=2.0)(q, proxies, y)
    torch.testing.assert_close(loss, 2.0 * torch.stack(terms).mean())
    hybrid = DiscrepantClusterNCELoss(mode='hybrid')(q, proxies, y)
    torch.testing.assert_close(
        hybrid, (torch.relu(terms[0] - 0.2) + terms[1] + terms[2]) / 3)


def test_gradient_uses_proxies_before_in_place_update():
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(4, 8, generator=g), dim=1).requires_grad_()
    proxies = F.normalize(torch.randn(2, 3, 8, generator=g), dim=2)
    old = proxies.clone()
    y = torch.tensor([0, 1, 2, 0])
    loss = DiscrepantClusterNCELoss()(q, proxies, y)
    proxies.mul_(-1)  # a memory update between forward and backward
    loss.backward()
    q2 = q.detach().clone().requires_grad_()
    DiscrepantClusterNCELoss()(q2, old, y).backward()
    torch.testing.assert_close(q.grad, q2.grad)


def test_invalid_input():
    with pytest.raises(ValueError, match='mode'):
        DiscrepantClusterNCELoss(mode='margin')
    with pytest.raises(ValueError, match=r'\(M, C, D\)'):
        DiscrepantClusterNCELoss()(Q, P[0], Y)
    with pytest.raises(ValueError, match='margin_index'):
        DiscrepantClusterNCELoss(mode='hybrid', margin_index=2)(Q, P, Y)
