# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmreid_usl.clustering import DBSCANClusterer
from mmreid_usl.registry import TASK_UTILS


def test_explicit_zero_is_a_neighbour():
    # 0-1 at stored distance 0, 1-2 at 0.5; 3 isolated (no stored pair)
    rows = [0, 1, 1, 2, 0, 1, 2, 3]
    cols = [1, 0, 2, 1, 0, 1, 2, 3]
    vals = [0.0, 0.0, 0.5, 0.5, 0, 0, 0, 0]
    dist = sp.csr_matrix((vals, (rows, cols)), shape=(4, 4))
    assert dist.nnz == 8
    clusterer = DBSCANClusterer(eps=0.2, min_samples=2)
    np.testing.assert_array_equal(clusterer(dist=dist), [0, 0, -1, -1])
    dense = np.ones((4, 4))
    dense[rows, cols] = vals
    np.testing.assert_array_equal(clusterer(dist=dense), [0, 0, -1, -1])
    np.testing.assert_array_equal(
        DBSCANClusterer(eps=0.6, min_samples=2)(dist=dist), [0, 0, 0, -1])
    # missing diagonal entries are added (a point is its own neighbour)
    no_diag = sp.csr_matrix(([0.0, 0.0], ([0, 1], [1, 0])), shape=(3, 3))
    np.testing.assert_array_equal(
        DBSCANClusterer(eps=0.1, min_samples=2)(dist=no_diag), [0, 0, -1])


def test_from_features_and_tensor():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(10, 32, generator=g))
    x = centres.repeat_interleave(20, 0) + 0.05 * torch.randn(
        200, 32, generator=g)
    x = torch.nn.functional.normalize(x, dim=1)
    clusterer = TASK_UTILS.build(
        dict(type='DBSCANClusterer', eps=0.6, min_samples=4,
             distance=dict(type='JaccardDistance', k1=15, k2=4)))
    labels = clusterer(x)
    assert labels.dtype == np.int64 and labels.max() == 9
    assert len(np.unique(labels[labels >= 0])) == labels.max() + 1
    dense = torch.cdist(x, x)
    labels_t = DBSCANClusterer(eps=0.7)(dist=dense)
    assert labels_t.max() == 9


def test_eps_one_sparse_rejected():
    with pytest.raises(ValueError):
        DBSCANClusterer(eps=1.0)(dist=sp.eye(3, format='csr'))
    with pytest.raises(ValueError):
        DBSCANClusterer()()
