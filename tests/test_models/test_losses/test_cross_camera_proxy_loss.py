# Copyright (c) mmreid_usl contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses.cross_camera_proxy_loss import \
    CrossCameraProxyLoss


def _reference_code(feats, proxies, plabels, targets, cams, tau, k):
    """Per-sample loop of the official formulation (§2.4)."""
    f = F.normalize(feats, dim=1)
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


def test_hand_computed_two_positives_one_negative():
    # Sample of cluster 0 in camera 0; proxies: cl0/cam0, cl0/cam1, cl1/cam0.
    feats = torch.tensor([[1., 0.]])
    proxies = F.normalize(torch.tensor([[1., 0.], [1., 1.], [0., 1.]]), dim=1)
    plabels = torch.tensor([0, 0, 1])
    s = [1 / 0.5, (1 / math.sqrt(2)) / 0.5, 0.]
    lse = math.log(sum(math.exp(v) for v in s))
    expected = -0.5 * ((s[0] - lse) + (s[1] - lse))
    loss = CrossCameraProxyLoss(
        temperature=0.5, loss_weight=1.0)(feats, proxies, plabels,
                                          torch.tensor([0]), torch.tensor([0]))
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
    expected = -(
        s[0] - math.log(math.exp(s[0]) + math.exp(s[1]) + math.exp(s[2])))
    loss = CrossCameraProxyLoss(
        temperature=tau, num_negatives=2, loss_weight=1.0)(feats, proxies,
                                                           plabels,
                                                           torch.tensor([0]),
                                                           torch.tensor([0]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_matches_reference_loop_and_camera_sum():
    torch.manual_seed(0)
    feats = torch.randn(8, 16)
    proxies = F.normalize(torch.randn(70, 16), dim=1)
    plabels = torch.randint(0, 20, (70, ))
    targets = plabels[torch.randint(0, 70, (8, ))]
    cams = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    ref = _reference_code(feats, proxies, plabels, targets, cams, 0.07, 50)
    loss = CrossCameraProxyLoss()(feats, proxies, plabels, targets, cams)
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
    loss = CrossCameraProxyLoss(
        temperature=tau, variant='paper', loss_weight=1.0)(
            feats,
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
        loss_fn(
            feats[s],
            proxies,
            plabels,
            targets[s],
            cams[s],
            batch_cam_index=cams,
            scale=2.) for s in (slice(0, 4), slice(4, 8))
    ]
    assert torch.allclose(full, sum(halves) / 2, atol=1e-5)
