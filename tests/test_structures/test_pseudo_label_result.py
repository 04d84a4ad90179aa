# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmreid_usl.structures import PseudoLabelResult, relabel_contiguous


def test_relabel_contiguous():
    np.testing.assert_array_equal(
        relabel_contiguous([5, -1, 7, 5, -3, 2]), [1, -1, 2, 1, -1, 0])
    np.testing.assert_array_equal(relabel_contiguous(torch.tensor([-1])),
                                  [-1])


def test_from_labels_centroids_and_fields():
    feats = torch.arange(12, dtype=torch.float32).view(6, 2)
    camids = torch.tensor([1, 2, 1, 2, 1, 2])
    res = PseudoLabelResult.from_labels(
        np.array([3, 3, -1, 9, 9, 9]), feats, camids=camids, epoch=4)
    assert res.labels.dtype == torch.long
    assert res.labels.tolist() == [0, 0, -1, 1, 1, 1]
    assert res.num_clusters == 2 and res.num_outliers == 1
    assert res.num_samples == 6 and res.epoch == 4
    assert res.cluster_encoder == 'student' and res.labels_from == 'pseudo'
    torch.testing.assert_close(res.centroids,
                               torch.tensor([[1., 2.], [8., 9.]]))
    assert res.bank() is feats and torch.equal(res.camids, camids)


def test_several_banks_and_centroids_of_another_bank():
    a = torch.arange(8, dtype=torch.float32).view(4, 2)
    b = -a
    res = PseudoLabelResult.from_labels([0, 0, 1, -1],
                                        dict(student=a, momentum=b),
                                        cluster_encoder='momentum')
    torch.testing.assert_close(res.centroids, torch.tensor([[-1., -2.],
                                                            [-4., -5.]]))
    torch.testing.assert_close(
        res.centroids_of('student'), torch.tensor([[1., 2.], [4., 5.]]))
    with pytest.raises(KeyError, match="no 'ema' feature bank"):
        res.bank('ema')
    with pytest.raises(ValueError, match='cluster_encoder must name'):
        PseudoLabelResult.from_labels([0, 1, 1, 0], dict(student=a,
                                                         momentum=b))
    with pytest.raises(ValueError, match='labels_from'):
        PseudoLabelResult.from_labels([0], a[:1], labels_from='clusters')


def test_zero_clusters_and_to():
    feats = torch.randn(5, 3)
    res = PseudoLabelResult.from_labels([-1] * 5, feats)
    assert res.num_clusters == 0 and res.num_outliers == 5
    assert res.centroids.shape == (0, 3)
    moved = res.to('cpu')
    assert moved is not res and torch.equal(moved.labels, res.labels)
