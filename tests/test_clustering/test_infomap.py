# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from mmreid_usl.registry import TASK_UTILS


def test_infomap_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(12, 32, generator=g))
    true = torch.arange(12).repeat_interleave(15)
    x = centres[true] + 0.15 * torch.randn(180, 32, generator=g)
    x = torch.cat([x, 10 * torch.randn(3, 32, generator=g)])  # 3 loners
    x = torch.nn.functional.normalize(x, dim=1)
    clusterer = TASK_UTILS.build(
        dict(type='InfomapClusterer', k=10, min_sim=0.5))
    labels = clusterer(x)
    assert labels.dtype == np.int64 and labels.shape == (183, )
    assert (labels[-3:] == -1).all()
    assert len(np.unique(labels[labels >= 0])) == labels.max() + 1
    assert adjusted_rand_score(true.numpy(), labels[:180]) > 0.95
    # no edge above min_sim: everything is an outlier
    assert (TASK_UTILS.build(dict(type='InfomapClusterer',
                                  min_sim=0.999))(x) == -1).all()


def _blobs(sizes, dim=16, noise=0.02, seed=0):
    """Tight, mutually orthogonal-ish groups of the given sizes."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(dim)[:len(sizes)]
    true = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    x = centres[true] + noise * torch.randn(len(true), dim, generator=g)
    return torch.nn.functional.normalize(x, dim=1), true.numpy()


def test_infomap_official_minimum_size_five():
    # Official script: modules of <= 4 images (k2 = 4) are outliers.
    x, true = _blobs([4, 5, 8])
    labels = TASK_UTILS.build(dict(type='InfomapClusterer'))(x)
    assert (labels[true == 0] == -1).all()  # 4 images: outliers
    for c in (1, 2):  # 5 and 8 images: one cluster each
        assert len(np.unique(labels[true == c])) == 1
        assert labels[true == c][0] >= 0
    assert labels.max() == 1
    # the switch: keep modules of 4
    labels4 = TASK_UTILS.build(
        dict(type='InfomapClusterer', min_cluster_size=4))(x)
    assert len(np.unique(labels4[true == 0])) == 1 and labels4[0] >= 0
    assert labels4.max() == 2


def test_infomap_k_counts_the_point_itself(monkeypatch):
    # k = 15 including the point: 14 links per point, never a self-loop.
    import infomap
    links = []

    class Recorder(infomap.Infomap):

        def add_links(self, edges):
            edges = list(edges)
            links.extend(edges)
            return super().add_links(edges)

    monkeypatch.setattr(infomap, 'Infomap', Recorder)
    x, _ = _blobs([20, 20], noise=0.3)  # min_sim -1 keeps every edge
    TASK_UTILS.build(dict(type='InfomapClusterer', min_sim=-1.))(x)
    src = np.array([e[0] for e in links])
    dst = np.array([e[1] for e in links])
    assert len(links) == 40 * 14
    assert (np.bincount(src, minlength=40) == 14).all()
    assert (src != dst).all()
    # the links are the 14 nearest other points
    d = torch.cdist(x, x)
    d.fill_diagonal_(float('inf'))
    nearest = d.topk(14, largest=False).indices.numpy()
    for i in range(40):
        assert set(dst[src == i].tolist()) == set(nearest[i].tolist())


def test_infomap_bad_arguments():
    with pytest.raises(ValueError, match='k counts the point itself'):
        TASK_UTILS.build(dict(type='InfomapClusterer', k=1))
