# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch
import torch.nn.functional as F

from mmreid_usl.models.losses import ClusterNCELoss
from mmreid_usl.models.memories import ClusterMemory
from mmreid_usl.models.utils.precision import at_least_fp32
from mmreid_usl.structures import PseudoLabelResult


def test_at_least_fp32():
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        assert at_least_fp32(torch.ones(2, dtype=dtype)).dtype == \
            torch.float32
    assert at_least_fp32(torch.ones(2, dtype=torch.float64)).dtype == \
        torch.float64


def test_cluster_memory_and_loss_keep_float64():
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(8, 4, generator=g, dtype=torch.float64),
                        dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    mem = ClusterMemory(feat_dim=4, old_weight=0.1)
    mem.reset(PseudoLabelResult.from_labels(labels.numpy(),
                                            {'student': feats}))
    assert mem.features.dtype == torch.float64
    q = feats.clone().requires_grad_(True)
    loss = ClusterNCELoss()(q, mem.features, labels)
    assert loss.dtype == torch.float64
    loss.backward()
    assert q.grad.dtype == torch.float64
    mem.update(feats, labels)
    assert mem.features.dtype == torch.float64
    # float32 features against the float64 memory: float32 maths
    assert mem(feats.float()).dtype == torch.float32


def test_ice_memory_and_losses_keep_float64():
    from mmreid_usl.models.losses import (AgnosticProxyLoss,
                                          CrossCameraProxyLoss,
                                          HardInstanceContrastiveLoss,
                                          SoftInstanceConsistencyLoss)
    from mmreid_usl.models.memories import CameraProxyMemory
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(8, 4, generator=g, dtype=torch.float64),
                        dim=1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    cams = torch.tensor([0, 1, 0, 1, 0, 1, 0, 0])
    mem = CameraProxyMemory(feat_dim=4)
    mem.reset(PseudoLabelResult.from_labels(
        labels.numpy(), {'student': feats}, camids=cams))
    assert mem.centroids.dtype == mem.proxies.dtype == torch.float64
    q = feats.clone().requires_grad_(True)
    keys = feats.flip(0)
    losses = [
        AgnosticProxyLoss()(q, mem.centroids, labels),
        CrossCameraProxyLoss()(q, labels, mem.camera_proxies(cams)),
        HardInstanceContrastiveLoss()(q, keys, labels),
        SoftInstanceConsistencyLoss()(q, keys, feats),
    ]
    assert all(loss.dtype == torch.float64 for loss in losses)
    sum(losses).backward()
    assert q.grad.dtype == torch.float64
    # float32 features: float32 proxies and maths, as before
    mem.reset(PseudoLabelResult.from_labels(
        labels.numpy(), {'student': feats.float()}, camids=cams))
    assert mem.proxies.dtype == torch.float32
    assert AgnosticProxyLoss()(feats.float(), mem.centroids,
                               labels).dtype == torch.float32
