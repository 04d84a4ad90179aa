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


@pytest.mark.parametrize('eps', [1.0, 1.5, 0.0, -0.1, float('nan')])
def test_eps_outside_open_unit_interval_rejected_when_built(eps):
    # the Jaccard distance lies in [0, 1]: eps >= 1 is one single cluster,
    # eps <= 0 all outliers; both fail when the config is built
    with pytest.raises(ValueError, match=r'DBSCANClusterer: eps must be in '
                       r'\(0, 1\)'):
        TASK_UTILS.build(dict(type='DBSCANClusterer', eps=eps))


@pytest.mark.parametrize('kwargs,error', [
    (dict(eps='abc'), TypeError),
    (dict(eps=True), TypeError),
    (dict(min_samples=0), ValueError),
    (dict(min_samples=2.5), TypeError),
    (dict(min_samples='4'), TypeError),
    (dict(n_jobs='all'), TypeError),
])
def test_bad_parameters_name_the_argument(kwargs, error):
    name = next(iter(kwargs))
    with pytest.raises(error, match=f'DBSCANClusterer: {name} must be'):
        DBSCANClusterer(**kwargs)


def test_other_clusterers_validate_when_built():
    with pytest.raises(ValueError, match='KMeansClusterer: num_clusters'):
        TASK_UTILS.build(dict(type='KMeansClusterer', num_clusters=1))
    with pytest.raises(TypeError, match='KMeansClusterer: niter'):
        TASK_UTILS.build(
            dict(type='KMeansClusterer', num_clusters=4, niter=2.0))
    with pytest.raises(ValueError, match='InfomapClusterer: min_sim'):
        TASK_UTILS.build(dict(type='InfomapClusterer', min_sim=1.0))
    with pytest.raises(ValueError, match='InfomapClusterer: knn_backend'):
        TASK_UTILS.build(dict(type='InfomapClusterer', knn_backend='gpu'))
