# Copyright (c) mmreid_usl contributors. All rights reserved.
"""GDSLoss: the momentum statistics (supplement Eq. 1-3) and the losses."""
import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses import GDSLoss


def _pairs(feats: np.ndarray, labels: np.ndarray):
    """Positive / negative distances (1 - cos)/2 by explicit loops."""
    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(x)), 2):
        d = (1 - float(x[i] @ x[j])) / 2
        (pos if labels[i] == labels[j] else neg).append(d)
    return np.array(pos), np.array(neg)


def _stream(num_batches=6, p=4, k=4, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(p), k)
    for _ in range(num_batches):
        centres = rng.normal(size=(p, dim))
        yield (centres[labels] + 0.7 * rng.normal(size=(p * k, dim))).astype(
            np.float32), labels


def test_constant_momentum_matches_closed_form():
    beta, mu0, var0 = 0.8, 0.5, 1 / 6
    loss = GDSLoss(old_weight=beta).train()
    batches = list(_stream())
    for feats, labels in batches:
        loss(torch.from_numpy(feats), torch.from_numpy(labels))
    t = len(batches)
    for kind in (0, 1):  # positive, negative
        d_all = [_pairs(f, lab)[kind] for f, lab in batches]
        # Eq. 1 unrolled: mu_t = b^t mu_0 + (1-b) sum_s b^(t-s) mean(d_s)
        mu = beta**t * mu0 + (1 - beta) * sum(
            beta**(t - 1 - s) * d.mean() for s, d in enumerate(d_all))
        # Eq. 3 unrolled, each batch's deviations around the previous mean
        mus = [mu0]
        for d in d_all:
            mus.append(beta * mus[-1] + (1 - beta) * d.mean())
        var = beta**t * var0 + (1 - beta) * sum(
            beta**(t - 1 - s) * ((d - mus[s])**2).mean()
            for s, d in enumerate(d_all))
        assert np.isclose(mus[-1], mu, atol=1e-12)
        got_mu = float(loss.mean_pos if kind == 0 else loss.mean_neg)
        got_var = float(loss.var_pos if kind == 0 else loss.var_neg)
        assert got_mu == pytest.approx(mu, abs=1e-6)
        assert got_var == pytest.approx(var, abs=1e-6)
    assert int(loss.num_updates) == t


def test_cumulative_beta_gives_exact_mean_and_eq3_variance():
    """beta = N / (N + M): Eq. 1 is the exact mean of all distances seen;
    the variance follows Eq. 3 and approaches the exact one (N >> M)."""
    loss = GDSLoss(old_weight=None).train()
    batches = list(_stream(num_batches=200, seed=1))
    seen, var = [], None
    for feats, labels in batches:
        pos, _ = _pairs(feats, labels)
        if seen:
            mu_a = np.mean(seen)
            beta = len(seen) / (len(seen) + len(pos))
            var = beta * var + (1 - beta) * ((pos - mu_a)**2).mean()
        else:  # beta = 0; deviations around the previous (initial) mean
            var = ((pos - 0.5)**2).mean()
        seen.extend(pos)
        loss(torch.from_numpy(feats), torch.from_numpy(labels))
        assert float(loss.mean_pos) == pytest.approx(np.mean(seen), abs=1e-6)
        assert float(loss.var_pos) == pytest.approx(var, abs=1e-6)
    assert float(loss.count_pos) == len(seen)
    assert var == pytest.approx(np.var(seen), rel=0.1)


def test_eval_mode_does_not_update_and_buffers_in_state_dict():
    loss = GDSLoss()
    feats, labels = next(_stream())
    loss.eval()
    loss(torch.from_numpy(feats), torch.from_numpy(labels))
    assert float(loss.mean_pos) == 0.5 and int(loss.num_updates) == 0
    loss.train()
    loss(torch.from_numpy(feats), torch.from_numpy(labels))
    state = loss.state_dict()
    assert {'mean_pos', 'var_pos', 'mean_neg', 'var_neg',
            'num_updates'} <= set(state)
    fresh = GDSLoss()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.mean_neg, loss.mean_neg)
    assert int(fresh.num_updates) == 1


def _separated_batch(level: float, seed: int, p=4, k=4, dim=16):
    """Identities whose centres spread apart and whose members tighten as
    ``level`` goes from 0 to 1."""
    g = torch.Generator().manual_seed(seed)
    common = torch.ones(dim) / dim**0.5
    basis = F.normalize(torch.randn(p, dim, generator=g), dim=1)
    centres = F.normalize(level * basis + (1 - level) * 2 * common, dim=1)
    noise = (1.0 - 0.9 * level) * 0.5
    labels = torch.arange(p).repeat_interleave(k)
    feats = centres[labels] + noise * torch.randn(p * k, dim, generator=g)
    return feats, labels


@pytest.mark.parametrize('kwargs', [
    dict(),
    dict(form='margin', margin=0.1),
    dict(hard_mining='beyond_mean'),
    dict(distance='euclidean'),
])
def test_losses_fall_as_distributions_separate_and_sharpen(kwargs):
    """At each separation level the loss is fed batches of that level until
    the global statistics settle; both losses fall with the level."""
    levels = np.linspace(0, 1, 6)
    gds, hard = [], []
    for level in levels:
        loss = GDSLoss(old_weight=0.5, **kwargs).train()
        vals = []
        for step in range(30):
            out = loss(*_separated_batch(level, step))
            if step >= 15:
                vals.append((float(out['loss_gds']),
                             float(out['loss_gds_h'])))
        gds.append(np.mean([v[0] for v in vals]))
        hard.append(np.mean([v[1] for v in vals]))
    assert all(np.diff(gds) < 0), gds
    assert all(np.diff(hard) <= 0) and hard[-1] < hard[0], hard


def test_training_stream_statistics_separate():
    """Fed batches that separate over time, the global means move apart and
    both standard deviations shrink (supplement Fig. 2)."""
    loss = GDSLoss(old_weight=0.9).train()
    first = None
    for step, level in enumerate(np.linspace(0, 1, 60)):
        out = loss(*_separated_batch(level, step))
        if step == 5:
            first = {k: float(v) for k, v in out.items()}
    last = {k: float(v) for k, v in out.items()}
    assert last['gds_mean_neg'] - last['gds_mean_pos'] > \
        first['gds_mean_neg'] - first['gds_mean_pos']
    assert last['gds_std_pos'] < first['gds_std_pos']
    assert last['loss_gds'] < first['loss_gds']
    assert last['loss_gds_h'] < first['loss_gds_h']


def test_gradient_flows_through_batch_share_only():
    """The stored statistics are constants: the loss's gradient is the
    batch's share (1 - beta) of the one-batch (beta = 0) gradient (margin
    form with a large margin, so the loss is linear in the statistics)."""
    beta = 0.75
    feats, labels = _separated_batch(0.5, 0)
    feats.requires_grad_(True)
    g = []
    for b in (beta, 0.0):
        loss = GDSLoss(old_weight=b, lambda_h=0.0, form='margin',
                       margin=5.0).train()
        out = loss(feats, labels)
        assert 'loss_gds_h' not in out
        (grad, ) = torch.autograd.grad(out['loss_gds'], feats)
        g.append(grad)
    assert g[1].abs().sum() > 0
    torch.testing.assert_close(g[0], (1 - beta) * g[1], rtol=1e-5,
                               atol=1e-7)


def test_formulas_by_hand():
    """One batch with beta = 0: L_GDS and the tails L_H from the pair
    distances computed by hand."""
    feats, labels = _separated_batch(0.3, 3)
    pos, neg = _pairs(feats.numpy(), labels.numpy())
    mp, vp, mn, vn = pos.mean(), pos.var(), neg.mean(), neg.var()
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    out = GDSLoss(old_weight=0.0, lambda_sigma=2.0, lambda_h=0.5,
                  init_mean=0.3, init_var=0.0).train()(feats, labels)
    # beta = 0: variance around the PREVIOUS global mean (init 0.3), Eq. 3
    vp0 = ((pos - 0.3)**2).mean()
    vn0 = ((neg - 0.3)**2).mean()
    assert float(out['loss_gds']) == pytest.approx(
        sp(mp - mn) + 2.0 * (vp0 + vn0), rel=1e-5)
    tails = (mp + 3 * np.sqrt(vp0)) - (mn - 3 * np.sqrt(vn0))
    assert float(out['loss_gds_h']) == pytest.approx(0.5 * sp(tails),
                                                     rel=1e-5)
    assert vp0 >= vp and vn0 >= vn  # deviation from another mean is larger
    margin = GDSLoss(old_weight=0.0, form='margin', margin=0.2,
                     lambda_h=0.0).train()(feats, labels)
    assert float(margin['loss_gds']) == pytest.approx(
        max(0, mp - mn + 0.2) + (((pos - .5)**2).mean() +
                                 ((neg - .5)**2).mean()),
        rel=1e-5)


def test_beyond_mean_by_hand():
    feats, labels = _separated_batch(0.1, 4)
    pos, neg = _pairs(feats.numpy(), labels.numpy())
    mp, mn = pos.mean(), neg.mean()
    out = GDSLoss(
        old_weight=0.0, hard_mining='beyond_mean', form='margin',
        lambda_h=1.0).train()(feats, labels)
    hp, hn = pos[pos > mn] - mn, mp - neg[neg < mp]
    expect = (hp.mean() if hp.size else 0) + (hn.mean() if hn.size else 0)
    assert hp.size > 0 and hn.size > 0
    assert float(out['loss_gds_h']) == pytest.approx(expect, rel=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match='old_weight'):
        GDSLoss(old_weight=1.0)
    with pytest.raises(ValueError, match='form'):
        GDSLoss(form='hinge')
    with pytest.raises(ValueError, match='hard_mining'):
        GDSLoss(hard_mining='top')
    with pytest.raises(ValueError, match='targets'):
        GDSLoss()(torch.randn(4, 3), torch.zeros(3, dtype=torch.long))


def test_deprecated_momentum_name_same_numbers():
    """``momentum`` is the deprecated name of ``old_weight`` (the OLD
    statistics' weight, the opposite of the EMA encoders' ``momentum``):
    accepted with a warning, the same statistics and losses."""
    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils.deprecation import DeprecatedNameWarning
    feats, labels = _separated_batch(0.3, 4)
    outs = []
    for kwargs in (dict(old_weight=0.7), dict(momentum=0.7)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            loss = GDSLoss(**kwargs).train()
        assert [w.category for w in caught] == (
            [DeprecatedNameWarning] if 'momentum' in kwargs else [])
        outs.append([loss(feats, labels) for _ in range(3)])
        assert loss.old_weight == 0.7
    with pytest.warns(DeprecatedNameWarning, match='old_weight'):
        old = MODELS.build(dict(type='GDSLoss', momentum=None))
    assert old.old_weight is None
    for new, dep in zip(*outs):
        assert set(new) == set(dep)
        for key in new:
            assert torch.equal(new[key], dep[key]), key
    with pytest.raises(TypeError, match='both'):
        GDSLoss(old_weight=0.5, momentum=0.5)
