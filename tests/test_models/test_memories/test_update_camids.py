# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Every memory's ``update`` takes the batch's camera ids."""
import inspect

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.memories import (BaseMemory, CameraProxyMemory,
                                        ClusterMemory,
                                        DiscrepantClusterMemory,
                                        InstanceProxyMemory)
from mmreid_usl.structures import PseudoLabelResult


@pytest.mark.parametrize('cls', [
    BaseMemory, CameraProxyMemory, ClusterMemory, DiscrepantClusterMemory,
    InstanceProxyMemory
])
def test_update_signature_has_camids(cls):
    params = inspect.signature(cls.update).parameters
    assert list(params)[:4] == ['self', 'feats', 'targets', 'camids']
    assert params['camids'].default is None


def _result(n=12, d=8):
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1)
    return PseudoLabelResult.from_labels(
        torch.arange(n) % 3, {'student': feats}, camids=torch.arange(n) % 2)


def test_camids_do_not_change_camera_blind_updates():
    result = _result()
    feats = F.normalize(torch.randn(4, 8), dim=1)
    targets = torch.tensor([0, 1, 2, 0])
    a, b = ClusterMemory(8), ClusterMemory(8)
    a.reset(result)
    b.reset(result)
    a.update(feats, targets)
    b.update(feats, targets, torch.tensor([0, 1, 1, 0]))
    torch.testing.assert_close(a.features, b.features)


def test_discrepant_memory_passes_camids_on(monkeypatch):
    mem = DiscrepantClusterMemory(8, update_modes=('hard', 'mean'))
    mem.reset(_result())
    seen = []
    for proxy in mem.proxies:
        monkeypatch.setattr(proxy, 'update',
                            lambda f, t, camids=None: seen.append(camids))
    camids = torch.tensor([3, 4])
    mem.update(torch.randn(2, 8), torch.tensor([0, 1]), camids)
    assert len(seen) == 2 and all(c is camids for c in seen)


def test_camera_proxy_memory_hands_the_loss_its_proxies():
    mem = CameraProxyMemory(8)
    mem.reset(_result())
    out = mem.camera_proxies(torch.tensor([1, 0, 5]))
    assert out.proxies is mem.proxies and out.labels is mem.proxy_labels
    assert out.cams is mem.proxy_cams
    assert out.query_cams.tolist() == [1, 0, -1]
