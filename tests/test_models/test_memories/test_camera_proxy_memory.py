# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch
import torch.nn.functional as F

from mmreid_usl.models.memories.camera_proxy_memory import CameraProxyMemory


def _toy():
    feats = F.normalize(
        torch.tensor([[1., 0.], [0.8, 0.6], [0., 1.], [0.6, 0.8], [1., 1.],
                      [0.3, 0.1]]),
        dim=1)
    labels = torch.tensor([0, 0, 1, 1, 0, -1])
    camids = torch.tensor([5, 2, 5, 5, 5, 2])  # ids need not be 0..n-1
    return feats, labels, camids


def test_reset_builds_centroids_and_camera_proxies():
    feats, labels, camids = _toy()
    mem = CameraProxyMemory(feat_dim=2)
    mem.build(feats, labels, camids)
    assert mem.num_clusters == 2
    # Cluster proxies: plain means, NOT re-normalised; outlier ignored.
    assert torch.allclose(mem.centroids[0], feats[[0, 1, 4]].mean(0))
    assert torch.allclose(mem.centroids[1], feats[[2, 3]].mean(0))
    assert mem.centroids[0].norm() < 1
    # Camera map: index 0 -> camera 2, index 1 -> camera 5.
    assert mem.camera_ids.tolist() == [2, 5]
    assert mem.camera_index(torch.tensor([5, 2, 7])).tolist() == [1, 0, -1]
    # Proxies ordered by camera then cluster: (c2,cl0), (c5,cl0), (c5,cl1).
    assert mem.proxy_labels.tolist() == [0, 0, 1]
    assert mem.proxy_cams.tolist() == [0, 1, 1]
    assert torch.allclose(mem.proxies[0], feats[1])
    assert torch.allclose(mem.proxies[1],
                          F.normalize(feats[[0, 4]].mean(0), dim=0))
    assert torch.allclose(mem.proxies.norm(dim=1), torch.ones(3))


def test_state_dict_roundtrip_resizes():
    feats, labels, camids = _toy()
    mem = CameraProxyMemory(feat_dim=2)
    mem.build(feats, labels, camids)
    fresh = CameraProxyMemory(feat_dim=2)  # empty buffers
    fresh.load_state_dict(mem.state_dict())
    for name, buf in mem.named_buffers():
        assert torch.equal(buf, getattr(fresh, name)), name
