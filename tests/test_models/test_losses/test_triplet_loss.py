# Copyright (c) mmreid_usl contributors. All rights reserved.
"""TripletLoss: batch-hard mining against loops written out by hand."""
import numpy as np
import pytest
import torch

from mmreid_usl.models.losses import TripletLoss


def _reference(x: np.ndarray, y: np.ndarray, margin, metric='euclidean'):
    losses = []
    for a in range(len(x)):
        if metric == 'cosine':
            xn = x / np.linalg.norm(x, axis=1, keepdims=True)
            d = 1 - xn @ xn[a]
        else:
            d = np.sqrt(((x - x[a])**2).sum(1))
        pos = [d[p] for p in range(len(x)) if y[p] == y[a] and p != a]
        neg = [d[n] for n in range(len(x)) if y[n] != y[a]]
        if not pos or not neg:
            continue
        gap = max(pos) - min(neg)
        losses.append(np.log1p(np.exp(gap)) if margin is None else max(
            0.0, gap + margin))
    return float(np.mean(losses))


@pytest.mark.parametrize('margin,metric', [(0.5, 'euclidean'),
                                           (0.3, 'euclidean'),
                                           (None, 'euclidean'),
                                           (0.1, 'cosine')])
def test_batch_hard_matches_loops(margin, metric):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    loss = TripletLoss(margin=margin, metric=metric)(x, y)
    assert float(loss) == pytest.approx(
        _reference(x.numpy(), y.numpy(), margin, metric), rel=1e-5)


def test_anchor_without_positive_is_skipped_and_gradient():
    x = torch.tensor([[0., 0.], [0., 1.], [3., 0.], [2., 2.]],
                     requires_grad=True)
    y = torch.tensor([0, 0, 1, 2])  # anchors 2 and 3 have no positive
    loss = TripletLoss(margin=0.5, loss_weight=2.0)(x, y)
    # anchors 0, 1: d_ap = 1; d_an = min(3, sqrt(8)) = 2.828 / min(sqrt(10),
    # sqrt(5)) = 2.236 -> both relu(1 - d_an + 0.5) = 0
    assert float(loss) == 0.0
    x2 = torch.tensor([[0., 0.], [0., 2.], [0.5, 0.], [2., 2.]],
                      requires_grad=True)
    loss = TripletLoss(margin=0.5)(x2, y)
    # anchor 0: d_ap 2, d_an 0.5 -> 2; anchor 1: d_ap 2, d_an = min(
    # sqrt(4.25), 2) = 2 -> 0.5
    expect = (2.0 + 0.5) / 2
    assert float(loss) == pytest.approx(expect, rel=1e-6)
    loss.backward()
    assert torch.isfinite(x2.grad).all() and x2.grad.abs().sum() > 0


def test_no_valid_anchor_gives_zero_with_graph():
    x = torch.randn(4, 3, requires_grad=True)
    loss = TripletLoss()(x, torch.zeros(4, dtype=torch.long))
    assert float(loss) == 0 and loss.requires_grad


def test_bad_arguments():
    with pytest.raises(ValueError, match='metric'):
        TripletLoss(metric='manhattan')
    with pytest.raises(ValueError, match='margin'):
        TripletLoss(margin=-1)
    with pytest.raises(ValueError, match='targets'):
        TripletLoss()(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))
