# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses.cross_camera_proxy_loss import \
    CrossCameraProxyLoss as _Loss
from mmreid_usl.structures import CameraProxies


class CrossCameraProxyLoss(_Loss):
    """The loss called with the bank's parts, packed as the memory does."""

    def __call__(self,
                 feats,
                 proxies,
                 plabels,
                 targets,
                 cams,
                 proxy_cams=None,
                 **kwargs):
        return super().__call__(feats, targets,
                                CameraProxies(proxies, plabels, proxy_cams,
                                              cams), **kwargs)


def _reference_code(feats,
                    proxies,
                    plabels,
                    targets,
                    cams,
                    tau,
                    k,
                    proxy_norm='official'):
    """Per-sample loop of the official formulation (ICE ``camera_loss``)."""
    f = F.normalize(feats, dim=1)
    if proxy_norm == 'official':
        # As the official code: F.normalize(bank.t()) is (D, M); f @ it.
        proxies = F.normalize(proxies.t()).t()
    total = 0.
    for c in torch.unique(cams):
        idx = torch.nonzero(cams == c).flatten()
        acc = 0.
        for i in idx.tolist():
            s = f[i] @ proxies.t() / tau
            pos = torch.nonzero(plabels == targets[i]).flatten()
            tmp = s.clone()
            tmp[pos] = -1e4
            neg = torch.sort(tmp)[1][-k:]
            neg = neg[~torch.isin(neg, pos)]
            cat = torch.cat([s[pos], s[neg]])
            target = torch.zeros(len(cat))
            target[:len(pos)] = 1. / len(pos)
            acc += -(F.log_softmax(cat, 0) * target).sum()
        total += acc / len(idx)
    return total


def test_hand_computed_official_transposed_normalisation():
    # Same bank as below: rows (1,0), (1,1)/sqrt2, (0,1). Each column's norm
    # over the 3 proxies is sqrt(1 + 1/2) = sqrt(1.5), so every similarity is
    # the cosine divided by sqrt(1.5).
    feats = torch.tensor([[1., 0.]])
    proxies = F.normalize(torch.tensor([[1., 0.], [1., 1.], [0., 1.]]), dim=1)
    plabels = torch.tensor([0, 0, 1])
    c = math.sqrt(1.5)
    s = [1 / c / 0.5, (1 / math.sqrt(2)) / c / 0.5, 0.]
    lse = math.log(sum(math.exp(v) for v in s))
    expected = -0.5 * ((s[0] - lse) + (s[1] - lse))
    loss = CrossCameraProxyLoss(temperature=0.5,
                                loss_weight=1.0)(feats, proxies, plabels,
                                                 torch.tensor([0]),
                                                 torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_official_normalisation_changes_hard_negative():
    # f = (0.6, 0.8). Four positive proxies (0, 1) make column 1 heavy, so
    # the official per-dimension normalisation shrinks dimension 1: the hard
    # negative becomes (1, 0) instead of the cosine's (0.28, 0.96).
    feats = torch.tensor([[0.6, 0.8]])
    proxies = torch.tensor([[0., 1.]] * 4 + [[1., 0.], [0.28, 0.96]])
    plabels = torch.tensor([0, 0, 0, 0, 1, 2])
    tau = 0.1
    c0 = math.sqrt(1 + 0.28**2)
    c1 = math.sqrt(4 + 0.96**2)
    s_pos = 0.8 / c1
    s_a = 0.6 / c0  # proxy (1, 0)
    s_b = 0.6 * 0.28 / c0 + 0.8 * 0.96 / c1  # proxy (0.28, 0.96)
    assert s_a > s_b  # the official ranking
    expected = -(s_pos / tau -
                 math.log(4 * math.exp(s_pos / tau) + math.exp(s_a / tau)))
    loss = CrossCameraProxyLoss(temperature=tau,
                                num_negatives=1,
                                loss_weight=1.0)(feats, proxies, plabels,
                                                 torch.tensor([0]),
                                                 torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # cosine: (0.28, 0.96) has cosine 0.936 > 0.6 and is the hard negative.
    expected_cos = -(0.8 / tau -
                     math.log(4 * math.exp(0.8 / tau) + math.exp(0.936 / tau)))
    loss_cos = CrossCameraProxyLoss(temperature=tau,
                                    num_negatives=1,
                                    loss_weight=1.0,
                                    proxy_norm='cosine')(feats, proxies,
                                                         plabels,
                                                         torch.tensor([0]),
                                                         torch.tensor([0]))
    assert loss_cos.item() == pytest.approx(expected_cos, rel=1e-5)


def test_bad_proxy_norm_and_shape():
    with pytest.raises(ValueError, match='proxy_norm'):
        CrossCameraProxyLoss(proxy_norm='row')
    with pytest.raises(ValueError, match='proxies must be'):
        CrossCameraProxyLoss()(torch.randn(2, 4), torch.randn(3, 5),
                               torch.tensor([0, 1, 2]), torch.tensor([0, 1]),
                               torch.tensor([0, 0]))


def test_hand_computed_two_positives_one_negative():
    # Sample of cluster 0 in camera 0; proxies: cl0/cam0, cl0/cam1, cl1/cam0.
    feats = torch.tensor([[1., 0.]])
    proxies = F.normalize(torch.tensor([[1., 0.], [1., 1.], [0., 1.]]), dim=1)
    plabels = torch.tensor([0, 0, 1])
    s = [1 / 0.5, (1 / math.sqrt(2)) / 0.5, 0.]
    lse = math.log(sum(math.exp(v) for v in s))
    expected = -0.5 * ((s[0] - lse) + (s[1] - lse))
    loss = CrossCameraProxyLoss(temperature=0.5,
                                loss_weight=1.0,
                                proxy_norm='cosine')(feats, proxies, plabels,
                                                     torch.tensor([0]),
                                                     torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_top_k_negative_selection():
    # One sample, 1 positive and 5 negatives with known similarities; with
    # num_negatives=2 only the two most similar negatives enter the softmax.
    feats = torch.tensor([[1., 0.]])
    angles = torch.tensor([0.0, 0.3, 0.5, 1.0, 1.2, 1.4])  # cos decreasing
    proxies = torch.stack([angles.cos(), angles.sin()], dim=1)
    plabels = torch.tensor([0, 1, 2, 3, 4, 5])
    tau = 0.1
    s = (angles.cos() / tau).tolist()
    # positives: {0}; hardest negatives: proxies 1 and 2
    expected = -(s[0] -
                 math.log(math.exp(s[0]) + math.exp(s[1]) + math.exp(s[2])))
    loss = CrossCameraProxyLoss(temperature=tau,
                                num_negatives=2,
                                loss_weight=1.0,
                                proxy_norm='cosine')(feats, proxies, plabels,
                                                     torch.tensor([0]),
                                                     torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('proxy_norm', ['official', 'cosine'])
def test_matches_reference_loop_and_camera_sum(proxy_norm):
    torch.manual_seed(0)
    feats = torch.randn(8, 16)
    proxies = F.normalize(torch.randn(70, 16), dim=1)
    plabels = torch.randint(0, 20, (70, ))
    targets = plabels[torch.randint(0, 70, (8, ))]
    cams = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    ref = _reference_code(feats, proxies, plabels, targets, cams, 0.07, 50,
                          proxy_norm)
    loss = CrossCameraProxyLoss(proxy_norm=proxy_norm)(feats, proxies, plabels,
                                                       targets, cams)
    assert torch.allclose(loss, 0.5 * ref, rtol=1e-4)


def test_paper_variant_other_camera_positives():
    feats = torch.tensor([[1., 0.]])
    proxies = F.normalize(torch.tensor([[1., 0.], [1., 1.], [0., 1.]]), dim=1)
    plabels = torch.tensor([0, 0, 1])
    pcams = torch.tensor([0, 1, 0])
    tau = 0.5
    s = [1 / tau, (1 / math.sqrt(2)) / tau, 0.]
    # Only the camera-1 proxy is a positive; own-camera proxy is neither.
    expected = -(s[1] - math.log(math.exp(s[1]) + math.exp(s[2])))
    loss = CrossCameraProxyLoss(temperature=tau,
                                variant='paper',
                                loss_weight=1.0,
                                proxy_norm='cosine')(feats,
                                                     proxies,
                                                     plabels,
                                                     torch.tensor([0]),
                                                     torch.tensor([0]),
                                                     proxy_cams=pcams)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_gathered_camera_sizes_reproduce_full_batch():
    torch.manual_seed(3)
    feats = torch.randn(8, 16)
    proxies = F.normalize(torch.randn(30, 16), dim=1)
    plabels = torch.randint(0, 10, (30, ))
    targets = plabels[torch.randint(0, 30, (8, ))]
    cams = torch.tensor([0, 1, 1, 2, 0, 0, 2, 1])
    loss_fn = CrossCameraProxyLoss()
    full = loss_fn(feats, proxies, plabels, targets, cams)
    halves = [
        loss_fn(feats[s],
                proxies,
                plabels,
                targets[s],
                cams[s],
                batch_cam_index=cams,
                scale=2.) for s in (slice(0, 4), slice(4, 8))
    ]
    assert torch.allclose(full, sum(halves) / 2, atol=1e-5)


def _official_loop_short_bank(feats, proxies, plabels, targets, cams, tau, k):
    """The official selection as written (ICE ``camera_loss``): top-k of the
    masked similarities, positives NOT removed from the negatives."""
    f = F.normalize(feats, dim=1)
    proxies = F.normalize(proxies.t()).t()
    total = 0.
    for c in torch.unique(cams):
        idx = torch.nonzero(cams == c).flatten()
        acc = 0.
        for i in idx.tolist():
            s = f[i] @ proxies.t() / tau
            pos = torch.nonzero(plabels == targets[i]).flatten()
            tmp = s.clone()
            tmp[pos] = -1e4
            neg = torch.sort(tmp, stable=True)[1][-k:]
            cat = torch.cat([s[pos], s[neg]])
            target = torch.zeros(len(cat))
            target[:len(pos)] = 1. / len(pos)
            acc += -(F.log_softmax(cat, 0) * target).sum()
        total += acc / len(idx)
    return total


@pytest.mark.parametrize('num_proxies', [12, 52, 70])
def test_pad_negatives_with_positives_reproduces_official_short_bank(
        num_proxies):
    # 12 proxies <= 50: every proxy is a negative, positives counted twice;
    # 52: 50 < M < 50 + |P|: some positives (highest index) are taken;
    # 70: enough other proxies, both settings agree.
    torch.manual_seed(1)
    feats = torch.randn(8, 16)
    proxies = F.normalize(torch.randn(num_proxies, 16), dim=1)
    plabels = torch.arange(num_proxies) % (num_proxies // 3)
    targets = plabels[torch.randint(0, num_proxies, (8, ))]
    cams = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    ref = 0.5 * _official_loop_short_bank(feats, proxies, plabels, targets,
                                          cams, 0.07, 50)
    feats_p = feats.clone().requires_grad_(True)
    padded = CrossCameraProxyLoss(pad_negatives_with_positives=True)(
        feats_p, proxies, plabels, targets, cams)
    default = CrossCameraProxyLoss()(feats, proxies, plabels, targets, cams)
    assert torch.allclose(padded, ref, rtol=1e-5)
    padded.backward()
    assert torch.isfinite(feats_p.grad).all()
    num_pos = max(int((plabels == t).sum()) for t in targets)
    if num_proxies - num_pos >= 50:
        assert torch.allclose(default, padded, rtol=1e-6)
    else:
        assert not torch.allclose(default, padded, rtol=1e-3)
