# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DBSCAN on a precomputed (sparse or dense) distance."""
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_int, check_real
from mmreid_usl.structures import relabel_contiguous
from .base import (BaseClusterer, DistanceMatrix, LabelingContext,
                   eps_radius)

DistType = Union[sp.spmatrix, np.ndarray, torch.Tensor]


def _prune_sort(dist: sp.spmatrix, eps: float) -> sp.csr_matrix:
    """Keep stored entries <= eps (explicit zeros included), diagonal set,
    each row sorted by value (what sklearn wants, without its Python loop)."""
    dist = dist.tocsr()
    n = dist.shape[0]
    rows = np.repeat(np.arange(n), np.diff(dist.indptr))
    keep = dist.data <= eps
    rows, cols, vals = rows[keep], dist.indices[keep], dist.data[keep]
    # a point is its own neighbour: add (i, i) where missing (value 0)
    has_diag = np.zeros(n, dtype=bool)
    has_diag[rows[rows == cols]] = True
    missing = np.flatnonzero(~has_diag)
    rows = np.concatenate([rows, missing])
    cols = np.concatenate([cols, missing])
    vals = np.concatenate([vals, np.zeros(len(missing), vals.dtype)])
    order = np.lexsort((vals, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sp.csr_matrix((vals[order], cols[order], indptr), shape=(n, n))


@TASK_UTILS.register_module()
class DBSCANClusterer(BaseClusterer):
    """DBSCAN (Ester et al., KDD 1996) on a precomputed distance.

    A point is a core point when at least ``min_samples`` points (itself
    included) lie within ``dist <= eps``; clusters are the connected core
    points plus their border points; everything else is an outlier (-1).
    This is ``sklearn.cluster.DBSCAN(metric='precomputed')`` as in the
    official code (``docs/algorithms/common.md#dbscan-pseudo-labels``).

    Sparse input: scikit-learn treats every *stored* entry (explicit zeros
    included) as a distance and every missing entry as "not a neighbour".
    The sparse Jaccard matrix stores all pairs with distance < 1, so for
    ``eps < 1`` the labels equal those of the dense matrix. Before calling
    sklearn the matrix is pruned to ``<= eps`` and sorted row-wise by value,
    which changes nothing in the result but avoids sklearn's per-row sort.

    Parameters are checked when the clusterer is built (config build time,
    before any feature is extracted): the k-reciprocal Jaccard distance lies
    in ``[0, 1]``, so ``eps`` must lie in ``(0, 1)`` — ``eps <= 0`` links no
    pair (all outliers) and ``eps >= 1`` links every pair (one cluster, and
    the sparse matrix cannot even represent it).

    Args:
        eps (float): Neighbourhood radius, in ``(0, 1)``. Defaults to 0.6.
        min_samples (int): Core-point threshold, self included, ``>= 1``.
            Defaults to 4.
        distance (dict, optional): Config of a TASK_UTILS distance used when
            ``__call__`` gets no ``dist``. Defaults to
            ``dict(type='JaccardDistance', k1=30, k2=6)``.
        n_jobs (int, optional): Passed to sklearn. Defaults to None.
    """

    def __init__(self,
                 eps: float = 0.6,
                 min_samples: int = 4,
                 distance: Optional[dict] = None,
                 n_jobs: Optional[int] = None) -> None:
        owner = type(self).__name__
        self.eps = check_real(
            owner,
            'eps',
            eps,
            0,
            1,
            low_inclusive=False,
            high_inclusive=False,
            why='The Jaccard distance lies in [0, 1]: eps <= 0 makes every '
            'image an outlier, eps >= 1 puts all images in one cluster.')
        self.min_samples = check_int(
            owner,
            'min_samples',
            min_samples,
            low=1,
            why='It counts the point itself.')
        if n_jobs is not None:
            check_int(owner, 'n_jobs', n_jobs)
        self.distance_cfg = distance or dict(
            type='JaccardDistance', k1=30, k2=6)
        self.n_jobs = n_jobs

    def pruning_radius(self) -> Optional[float]:
        """``eps + 1e-3``: DBSCAN links only pairs ``<= eps``, so a sparse
        distance may leave out the others (identical labels)."""
        return eps_radius(self.eps)

    def distance_of(self, distance: Optional[DistanceMatrix],
                    context: LabelingContext) -> DistanceMatrix:
        """``distance``, or (None) the ``distance`` config's on
        ``context.features``."""
        if distance is not None:
            return distance
        if context.features is None:
            raise ValueError('need feats or dist')
        return TASK_UTILS.build(self.distance_cfg)(context.features, context)

    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Cluster.

        Args:
            distance (DistanceMatrix, optional): Precomputed ``N x N``
                distance; None computes the ``distance`` config's on
                ``context.features``.
            context (LabelingContext): The labelling context.

        Returns:
            np.ndarray: int64 labels (N,), 0..C-1, -1 = outlier.
        """
        dist = self.distance_of(distance, context).matrix
        if isinstance(dist, torch.Tensor):
            dist = dist.detach().cpu().numpy()
        if sp.issparse(dist):
            if self.eps >= 1:
                raise ValueError('sparse distances store only pairs < 1; '
                                 'use eps < 1 or a dense matrix')
            dist = _prune_sort(dist, self.eps)
        labels = DBSCAN(
            eps=self.eps,
            min_samples=self.min_samples,
            metric='precomputed',
            n_jobs=self.n_jobs).fit_predict(dist)
        return relabel_contiguous(labels)
