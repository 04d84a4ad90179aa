# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch

from mmreid_usl.models import MultiInstanceProxyLoss

# One query q = e1 of cluster 0 and K = 3 instance proxies per cluster with
# chosen cosine similarities to q (proxy = [s, sqrt(1 - s^2), 0]):
SIMS = [
    [0.9, 0.3, 0.6],  # cluster 0 (own): hardest 0.3, median 0.6, easiest 0.9
    [0.8, 0.7, 0.55],  # cluster 1
    [0.5, 0.2, -0.1],  # cluster 2
]


def _proxies(sims):
    s = torch.tensor(sims)
    return torch.stack([s, (1 - s**2).sqrt(), torch.zeros_like(s)], dim=-1)


Q = torch.tensor([[1., 0., 0.]])
Y = torch.tensor([0])


def _ce(pos, negs, tau=1.0):
    """-log(e^{pos/tau} / (e^{pos/tau} + sum e^{neg/tau}))."""
    den = math.exp(pos / tau) + sum(math.exp(n / tau) for n in negs)
    return -math.log(math.exp(pos / tau) / den)


@pytest.mark.parametrize(
    'hardness,mode,num,pos,negs',
    [
        # global top-N: the N most similar proxies of the other clusters
        ('hardest', 'global', 2, 0.3, [0.8, 0.7]),
        ('hardest', 'global', 3, 0.3, [0.8, 0.7, 0.55]),
        # N is capped at (C - 1) K = 6
        ('hardest', 'global', 50, 0.3, [0.8, 0.7, 0.55, 0.5, 0.2, -0.1]),
        # semi-hard: median positive, the most similar negatives below it
        ('semi_hard', 'global', 2, 0.6, [0.55, 0.5]),
        # fewer than N below the positive: the others are left out
        ('semi_hard', 'global', 50, 0.6, [0.55, 0.5, 0.2, -0.1]),
        ('easiest', 'global', 2, 0.9, [-0.1, 0.2]),
        # unofficial: one proxy of every other cluster
        ('hardest', 'per_cluster', 1, 0.3, [0.8, 0.5]),
        ('semi_hard', 'per_cluster', 1, 0.6, [0.55, 0.5]),
        ('easiest', 'per_cluster', 1, 0.9, [0.55, -0.1]),
    ])
def test_positive_and_negative_selection(hardness, mode, num, pos, negs):
    loss = MultiInstanceProxyLoss(
        temperature=1.0,
        num_negatives=num,
        negative_mode=mode,
        hardness=hardness)(Q, _proxies(SIMS), Y)
    assert float(loss) == pytest.approx(_ce(pos, negs), abs=1e-5)


def test_hand_computed_value_at_default_temperature():
    # hardest, global N=2, tau 0.05: -log(e^6 / (e^6 + e^16 + e^14))
    loss = MultiInstanceProxyLoss(num_negatives=2)(Q, _proxies(SIMS), Y)
    assert float(loss) == pytest.approx(
        math.log(1 + math.exp(10) + math.exp(8)), abs=1e-4)
    assert float(loss) == pytest.approx(10.1269, abs=1e-4)


def test_own_cluster_is_never_a_negative():
    # query of cluster 1: own proxies 0.8 / 0.7 / 0.55 are excluded from the
    # negatives even though they are the most similar
    loss = MultiInstanceProxyLoss(
        temperature=1.0, num_negatives=2)(Q, _proxies(SIMS),
                                          torch.tensor([1]))
    assert float(loss) == pytest.approx(_ce(0.55, [0.9, 0.6]), abs=1e-5)


def test_batch_gradient_and_weight():
    g = torch.Generator().manual_seed(0)
    proxies = torch.nn.functional.normalize(
        torch.randn(5, 4, 8, generator=g), dim=2)
    q = torch.nn.functional.normalize(
        torch.randn(6, 8, generator=g), dim=1).requires_grad_()
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for hardness in ('hardest', 'semi_hard', 'easiest'):
        for mode in ('global', 'per_cluster'):
            q.grad = None
            loss = MultiInstanceProxyLoss(
                num_negatives=7,
                negative_mode=mode,
                hardness=hardness,
                loss_weight=0.5)(q, proxies, y)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(q.grad).all()
            assert q.grad.abs().sum() > 0
    # per-sample reference (hardest, global, N = 7)
    sims = (q.detach() @ proxies.view(-1, 8).t()).view(6, 5, 4)
    ref = []
    for b in range(6):
        pos = sims[b, y[b]].min()
        others = torch.cat([sims[b, c] for c in range(5) if c != y[b]])
        negs = others.topk(7).values
        logits = torch.cat([pos.view(1), negs]) / 0.05
        ref.append(-torch.log_softmax(logits, 0)[0])
    loss = MultiInstanceProxyLoss(num_negatives=7)(q.detach(), proxies, y)
    torch.testing.assert_close(loss, torch.stack(ref).mean())


def test_invalid_arguments():
    with pytest.raises(ValueError, match='hardness'):
        MultiInstanceProxyLoss(hardness='hard')
    with pytest.raises(ValueError, match='negative_mode'):
        MultiInstanceProxyLoss(negative_mode='all')
    with pytest.raises(ValueError, match='num_negatives'):
        MultiInstanceProxyLoss(num_negatives=0)
    with pytest.raises(RuntimeError, match='C > 0'):
        MultiInstanceProxyLoss()(Q, torch.zeros(0, 3, 3), Y)
