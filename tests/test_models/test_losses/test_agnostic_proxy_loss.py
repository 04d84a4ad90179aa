# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch

from mmreid_usl.models.losses.agnostic_proxy_loss import AgnosticProxyLoss


def test_hand_computed_with_label_smoothing():
    # Two clusters, one sample: logits = f.p / 0.5 = [2, 0].
    feats = torch.tensor([[1., 0.]])
    centroids = torch.tensor([[1., 0.], [0., 1.]])
    targets = torch.tensor([0])
    log_p0 = 2 - math.log(math.exp(2) + 1)
    log_p1 = 0 - math.log(math.exp(2) + 1)
    eps = 0.1
    expected = -((1 - eps + eps / 2) * log_p0 + (eps / 2) * log_p1)
    loss = AgnosticProxyLoss(
        temperature=0.5, label_smoothing=eps)(feats, centroids, targets)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # The paper's plain softmax log loss.
    plain = AgnosticProxyLoss(
        temperature=0.5, label_smoothing=0.)(feats, centroids, targets)
    assert plain.item() == pytest.approx(-log_p0, rel=1e-6)


def test_matches_explicit_smoothed_targets_and_uses_raw_features():
    torch.manual_seed(0)
    feats = torch.randn(6, 8) * 5  # raw, unnormalised
    centroids = torch.randn(4, 8) * 0.3
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    eps, tau, num = 0.1, 0.5, 4
    log_prob = torch.log_softmax(feats @ centroids.t() / tau, dim=1)
    smooth = torch.full((6, num), eps / num)
    smooth[torch.arange(6), targets] += 1 - eps
    expected = (-smooth * log_prob).mean(0).sum()  # official reduction
    loss = AgnosticProxyLoss(loss_weight=2.0)(feats, centroids, targets)
    assert torch.allclose(loss, 2 * expected, atol=1e-5)


def test_gradient_only_to_features():
    feats = torch.randn(3, 4, requires_grad=True)
    centroids = torch.randn(2, 4, requires_grad=True)
    AgnosticProxyLoss()(feats, centroids, torch.tensor([0, 1, 1])).backward()
    assert feats.grad is not None and centroids.grad is None
