# Copyright (c) mmreid_usl contributors. All rights reserved.
"""TripletLoss: batch-hard mining against loops written out by hand, and
Theory's "semi" mining against hand-computed values."""
import numpy as np
import pytest
import torch

from mmreid_usl.models.losses import TripletLoss
from mmreid_usl.models.losses.triplet_loss import label_run_gcd


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


# ----------------------------------------------------------------------
# mining='semi' (Theory's reid/loss/triplet.py, use_semi=True)
#
# P = 2 blocks of K = 3 points in 2-d, margin 0.5, Euclidean distance:
#   block A (label 0): A0 = (0, 0), A1 = (0, 3), A2 = (0, -3)
#   block B (label 1): B0 = (4, 0), B1 = (4, 3), B2 = (8, 0)
# Positive distances: d(A0,A1) = 3, d(A0,A2) = 3, d(A1,A2) = 6,
#                     d(B0,B1) = 3, d(B0,B2) = 4, d(B1,B2) = 5.
# Hardest negative of each anchor (over the whole batch):
#   A0: B0 at 4 (B1 5, B2 8)         A1: B1 at 4 (B0 5, B2 sqrt 73)
#   A2: B0 at 5 (B1 sqrt 52, B2 sqrt 73)
#   B0: A0 at 4 (A1 5, A2 5)         B1: A1 at 4 (A0 5, A2 sqrt 52)
#   B2: A0 at 8 (A1, A2 sqrt 73)
# Semi terms, each anchor with the LATER positives of its block,
# max(0, d_ap - d_an + 0.5):
#   A0-A1: 3 - 4 + .5 < 0 -> 0     A0-A2: 3 - 4 + .5 -> 0
#   A1-A2: 6 - 4 + .5 = 2.5
#   B0-B1: 3 - 4 + .5 -> 0         B0-B2: 4 - 4 + .5 = 0.5
#   B1-B2: 5 - 4 + .5 = 1.5
# T = P K (K-1) / 2 = 6 terms, zeros included: (2.5 + 0.5 + 1.5) / 6 = 0.75
# (the mean over the 3 active terms would be 1.5; over all 12 ordered
# positive pairs 0.5).
# Batch-hard on the same batch (hardest positive of each anchor):
#   A0: 3 - 4 -> 0; A1: 6 - 4 -> 2.5; A2: 6 - 5 -> 1.5; B0: 4 - 4 -> 0.5;
#   B1: 5 - 4 -> 1.5; B2: 5 - 8 -> 0; mean 6 / 6 = 1.0.
A = [[0., 0.], [0., 3.], [0., -3.]]
B = [[4., 0.], [4., 3.], [8., 0.]]
Y6 = torch.tensor([0, 0, 0, 1, 1, 1])


def test_semi_hand_computed():
    x = torch.tensor(A + B, requires_grad=True)
    semi = TripletLoss(margin=0.5, mining='semi')
    loss = semi(x, Y6)
    assert float(loss) == pytest.approx(0.75, rel=1e-6)
    assert float(TripletLoss(margin=0.5, mining='semi', num_instances=3)(
        x, Y6)) == pytest.approx(0.75, rel=1e-6)
    assert float(TripletLoss(margin=0.5)(x, Y6)) == pytest.approx(
        1.0, rel=1e-6)
    # gradient w.r.t. A1, by hand (1/6 per active term):
    #   A1-A2:  d(A1,A2) - d(A1,B1): (A1-A2)/6 - (A1-B1)/4
    #           = (0, 6)/6 - (-4, 0)/4 = (0, 1) + (1, 0)
    #   B1-B2:  -d(B1,A1) (A1 is B1's hardest negative): -(A1-B1)/4 = (1, 0)
    #   A0-A1 inactive; B0's hardest negative is A0
    # -> ((0, 1) + (1, 0) + (1, 0)) / 6 = (1/3, 1/6)
    loss.backward()
    torch.testing.assert_close(x.grad[1], torch.tensor([1 / 3, 1 / 6]))
    # A0 only appears as B0's and B2's hardest negative: B0-B2 is active,
    # -d(B0,A0) -> -(A0-B0)/4 = (1, 0), / 6; B2-... has no later positive
    torch.testing.assert_close(x.grad[0], torch.tensor([1 / 6, 0.]))


def test_semi_later_means_later_in_the_block():
    # block A reversed (A2, A1, A0): A2-A1: 6 - 5 + .5 = 1.5, A2-A0: 3 - 5
    # + .5 -> 0, A1-A0: 3 - 4 + .5 -> 0; block B as before: 0.5 + 1.5
    # -> (1.5 + 0.5 + 1.5) / 6
    x = torch.tensor(A[::-1] + B)
    loss = TripletLoss(margin=0.5, mining='semi')(x, Y6)
    assert float(loss) == pytest.approx(3.5 / 6, rel=1e-6)


def _semi_reference(x, y, k, margin):
    """Theory's use_semi loop, re-derived: anchor i*K+j, positive
    i*K+q for q > j, negative = the anchor's nearest other label."""
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 1e-12))
    terms = []
    for i in range(len(x) // k):
        for j in range(k):
            a = i * k + j
            d_an = min(d[a, n] for n in range(len(x)) if y[n] != y[a])
            for q in range(j + 1, k):
                gap = d[a, i * k + q] - d_an
                terms.append(np.log1p(np.exp(gap)) if margin is None else
                             max(0.0, gap + margin))
    return float(np.mean(terms))


@pytest.mark.parametrize('margin,k', [(0.5, 4), (0.3, 2), (None, 4),
                                      (0.5, 8)])
def test_semi_matches_a_rederivation(margin, k):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64) * 3
    y = torch.repeat_interleave(torch.randperm(32 // k, generator=g) * 7,
                                k)
    loss = TripletLoss(margin=margin, mining='semi')(x, y)
    assert float(loss) == pytest.approx(
        _semi_reference(x.numpy(), y.numpy(), k, margin), rel=1e-5)


def test_semi_blocks():
    assert label_run_gcd(torch.tensor([3, 3, 3, 1, 1, 1])) == 3
    # one identity in two adjacent blocks still gives K
    assert label_run_gcd(torch.tensor([5, 5, 5, 5, 5, 5, 2, 2, 2])) == 3
    assert label_run_gcd(torch.tensor([4, 4, 0, 0, 0, 0])) == 2
    x = torch.randn(6, 2)
    with pytest.raises(ValueError, match='mixes labels'):
        TripletLoss(mining='semi', num_instances=3)(
            x, torch.tensor([0, 0, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match='multiple'):
        TripletLoss(mining='semi', num_instances=4)(x, torch.zeros(6).long())
    # a block of one identity: no negative, zero loss with the graph
    x.requires_grad_(True)
    loss = TripletLoss(mining='semi')(x, torch.zeros(6, dtype=torch.long))
    assert float(loss) == 0 and loss.requires_grad
    with pytest.raises(ValueError, match='mining'):
        TripletLoss(mining='hardest')
    with pytest.raises(ValueError, match='num_instances'):
        TripletLoss(mining='semi', num_instances=0)
