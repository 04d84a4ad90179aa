# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import torch

from mmreid_usl.clustering import (PseudoLabelResult, cluster_stats,
                                   relabel_contiguous)


def test_relabel_contiguous():
    np.testing.assert_array_equal(
        relabel_contiguous([5, -1, 7, 5, -3, 2]), [1, -1, 2, 1, -1, 0])
    np.testing.assert_array_equal(relabel_contiguous(torch.tensor([-1])),
                                  [-1])


def test_from_labels_centroids():
    feats = torch.arange(12, dtype=torch.float32).view(6, 2)
    res = PseudoLabelResult.from_labels(feats, np.array([3, 3, -1, 9, 9, 9]),
                                        note=1)
    assert res.labels.dtype == torch.long
    assert res.labels.tolist() == [0, 0, -1, 1, 1, 1]
    assert res.num_clusters == 2 and res.num_outliers == 1
    torch.testing.assert_close(res.centroids,
                               torch.tensor([[1., 2.], [8., 9.]]))
    assert res.extras == dict(note=1)


def test_zero_clusters():
    feats = torch.randn(5, 3)
    res = PseudoLabelResult.from_labels(feats, [-1] * 5)
    assert res.num_clusters == 0 and res.num_outliers == 5
    assert res.centroids.shape == (0, 3)
    stats = res.cluster_stats([0, 0, 1, 1, 2])
    assert stats['num_clusters'] == 0 and stats['ari_clustered'] == 0.0


def test_cluster_stats():
    stats = cluster_stats([0, 0, 1, 1, -1], [4, 4, 5, 5, 6])
    assert stats['ari'] == 1.0 and stats['nmi'] == 1.0
    assert stats['num_outliers'] == 1
    stats = cluster_stats([0, 0, 0, 0, 0], [4, 4, 5, 5, 6])
    assert stats['ari'] == 0.0
