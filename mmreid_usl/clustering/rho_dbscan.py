# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DBSCAN whose eps is computed once from the data (the "Theory" rule)."""
import warnings
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp
from mmengine.logging import print_log

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_real
from .base import (DistanceMatrix, LabelingContext, RawDistance,
                   as_distance_matrix)
from .dbscan import DBSCANClusterer
from .unstored_distance import UnstoredDistance, unstored_distance

__all__ = ['RhoDBSCANClusterer', 'UnstoredDistance', 'unstored_distance']

DistType = Union[DistanceMatrix, RawDistance]


@TASK_UTILS.register_module()
class RhoDBSCANClusterer(DBSCANClusterer):
    r"""DBSCAN whose eps is the mean of the smallest pairwise distances.

    The clustering of "Theory" (Song et al., "Unsupervised domain adaptive
    re-identification: Theory and practice", Pattern Recognition 2020,
    https://arxiv.org/abs/1807.11334; code lsongx/DomainAdaptiveReID), the
    baseline of GDS (``docs/algorithms/gds.md``): at the first clustering,

    .. math::
        \varepsilon = \frac{1}{T}\sum_{t=1}^{T} d_{(t)}, \qquad
        T = \operatorname{round}(\rho M),

    where :math:`d_{(1)} \le d_{(2)} \le \dots` are the :math:`M` non-zero
    distances of distinct pairs :math:`i < j` (the upper triangle of the
    distance matrix, zeros left out as in the official code) and
    :math:`\rho = 1.6\times10^{-3}`. That eps is kept for every later
    clustering (DBSCAN with ``min_samples``, outliers -1) and saved in the
    checkpoint by the ``PseudoLabelHook`` (:meth:`state_dict`), so a resumed
    run clusters with the same eps. ``T`` is at least 1.

    **No N x N matrix.** The official code sorts the dense upper triangle.
    Here, for a sparse distance (e.g. :class:`JaccardDistance` /
    :class:`SourceAwareJaccardDistance`, which store the pairs whose
    k-reciprocal neighbourhoods overlap), the smallest ``T`` values are
    taken among the STORED pairs. This is exact when the ``T``-th smallest
    stored value is ``<=`` a lower bound of every missing pair (for the
    Jaccard distance the missing pairs are at exactly 1; for the source-aware
    one at ``(1 - λ) + λ(s_i + s_j)``, bounded by ``(1 - λ) + 2λ min s``;
    see :class:`UnstoredDistance`): then no missing pair can be among the
    ``T`` smallest (a missing pair equal to the ``T``-th value would not
    change the mean). The condition is checked; when it fails (tiny or
    badly separated data) and the missing values are known exactly, the
    exact value is computed by a chunked pass over the rows (O(N²) time,
    O(chunk x N) memory); otherwise it stops with an error. With the
    defaults ``T ≈ ρN/2`` per image (about 10 for N = 12,936) — well inside
    the stored pairs, which include every k-reciprocal neighbour. A dense
    input is handled exactly as the official code does.

    **DBSCAN on the sparse matrix** is exact only if ``eps`` is below every
    missing pair; this is checked at every call.

    Args:
        rho (float): :math:`\rho` in ``(0, 1]``. Defaults to 1.6e-3.
        min_samples (int): Core-point threshold, self included. Defaults
            to 4.
        eps (float, optional): A fixed eps (skips the estimate). Defaults to
            None (computed at the first call).
        distance (dict, optional): Distance used when ``__call__`` gets no
            ``dist`` (see :class:`DBSCANClusterer`).
        n_jobs (int, optional): Passed to sklearn.
        chunk_rows (int, optional): Rows per chunk of the exact fallback.
            Defaults to about 2**24 / N.
    """

    def __init__(self,
                 rho: float = 1.6e-3,
                 min_samples: int = 4,
                 eps: Optional[float] = None,
                 distance: Optional[dict] = None,
                 n_jobs: Optional[int] = None,
                 chunk_rows: Optional[int] = None) -> None:
        owner = type(self).__name__
        super().__init__(
            eps=0.5 if eps is None else eps,
            min_samples=min_samples,
            distance=distance,
            n_jobs=n_jobs)
        if eps is None:
            self.eps = None
        self.rho = check_real(
            owner,
            'rho',
            rho,
            0,
            1,
            low_inclusive=False,
            why='It is the fraction of all pairwise distances averaged.')
        self.chunk_rows = chunk_rows
        #: How the last eps was computed (method, T, M, bounds).
        self.eps_info: dict = {}

    # ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``eps`` (None before the first clustering) and ``rho``."""
        return dict(eps=self.eps, rho=self.rho)

    def load_state_dict(self, state: dict) -> None:
        """Restore the eps of a checkpoint."""
        if 'eps' not in state:
            raise KeyError(f'{type(self).__name__}: state {state} has no '
                           "'eps'")
        if state.get('rho', self.rho) != self.rho:
            warnings.warn(f'{type(self).__name__}: the checkpoint\'s eps was '
                          f'computed with rho={state["rho"]}, this clusterer '
                          f'has rho={self.rho}; keeping the checkpoint\'s eps')
        eps = state['eps']
        self.eps = None if eps is None else float(eps)

    # ------------------------------------------------------------------
    def _top_count(self, num_pairs: int) -> int:
        return max(1, int(np.round(self.rho * num_pairs)))

    def _eps_dense(self, dist: np.ndarray) -> float:
        n = dist.shape[0]
        tri = dist[np.triu_indices(n, 1)].astype(np.float64)
        tri = tri[tri != 0]
        if tri.size == 0:
            raise ValueError(f'{type(self).__name__}: no non-zero pairwise '
                             'distance to estimate eps from.')
        top = self._top_count(tri.size)
        self.eps_info = dict(method='dense', top=top, num_pairs=tri.size)
        return float(np.partition(tri, top - 1)[:top].mean())

    def _eps_sparse(self, distance: DistanceMatrix) -> float:
        dist = distance.matrix.tocsr()
        n = dist.shape[0]
        rows = np.repeat(np.arange(n), np.diff(dist.indptr))
        upper = dist.indices > rows
        vals = dist.data[upper].astype(np.float64)
        floor = distance.unstored_distance
        bound = floor.lower_bound()
        all_pairs = n * (n - 1) // 2
        num_missing = all_pairs - int(upper.sum())
        stored_nz = vals[vals != 0]
        zero_stored = vals.size - stored_nz.size
        zero_missing = 0
        if num_missing and bound <= 0:
            zero_missing = self._count_missing_zeros(dist, floor)
        num_pairs = all_pairs - zero_stored - zero_missing
        if num_pairs <= 0:
            raise ValueError(f'{type(self).__name__}: no non-zero pairwise '
                             'distance to estimate eps from.')
        top = self._top_count(num_pairs)
        info = dict(
            top=top,
            num_pairs=num_pairs,
            num_stored=int(stored_nz.size),
            missing_bound=bound)
        if stored_nz.size >= top:
            smallest = np.partition(stored_nz, top - 1)[:top]
            kth = float(smallest.max())
            info['kth_stored'] = kth
            if num_missing == 0 or kth <= bound:
                self.eps_info = dict(info, method='stored')
                return float(smallest.mean())
        if not floor.exact:
            raise ValueError(
                f'{type(self).__name__}: the smallest {top} of {num_pairs} '
                'pairwise distances are not all among the stored pairs, and '
                'the missing pairs are only bounded (>= '
                f'{bound:.4g}); compute eps on an unpruned distance '
                '(max_distance=1) or give eps explicitly.')
        self.eps_info = dict(info, method='chunked')
        return self._eps_chunked(dist, floor, top)

    def _row_chunks(self, n: int):
        step = self.chunk_rows or max(1, (1 << 24) // max(n, 1))
        for r0 in range(0, n, step):
            yield r0, min(n, r0 + step)

    def _dense_rows(self, dist: sp.csr_matrix, floor: UnstoredDistance,
                    r0: int, r1: int) -> np.ndarray:
        """Exact values of rows ``r0:r1`` (missing pairs from ``floor``)."""
        n = dist.shape[0]
        block = floor.block(np.arange(r0, r1), n)
        sub = dist[r0:r1].tocoo()
        block[sub.row, sub.col] = sub.data
        return block

    def _count_missing_zeros(self, dist: sp.csr_matrix,
                             floor: UnstoredDistance) -> int:
        n = dist.shape[0]
        stored = dist.copy()
        stored.data = np.ones_like(stored.data)
        count = 0
        for r0, r1 in self._row_chunks(n):
            block = floor.block(np.arange(r0, r1), n)
            missing = stored[r0:r1].toarray() == 0
            upper = np.arange(n)[None, :] > np.arange(r0, r1)[:, None]
            count += int(((block == 0) & missing & upper).sum())
        return count

    def _eps_chunked(self, dist: sp.csr_matrix, floor: UnstoredDistance,
                     top: int) -> float:
        n = dist.shape[0]
        best = np.empty(0, dtype=np.float64)
        for r0, r1 in self._row_chunks(n):
            block = self._dense_rows(dist, floor, r0, r1)
            upper = np.arange(n)[None, :] > np.arange(r0, r1)[:, None]
            vals = block[upper]
            vals = np.concatenate([best, vals[vals != 0]])
            if vals.size > top:
                vals = np.partition(vals, top - 1)[:top]
            best = vals
        return float(best.mean())

    def compute_eps(self, dist: DistType) -> float:
        """The eps of ``dist`` by the rho rule (does not store it)."""
        distance = as_distance_matrix(dist)
        if distance.is_sparse:
            return self._eps_sparse(distance)
        return self._eps_dense(np.asarray(distance.matrix))

    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Cluster; the first call computes and keeps eps.

        Returns:
            np.ndarray: int64 labels (N,), 0..C-1, -1 = outlier.
        """
        dist = self.distance_of(distance, context)
        if self.eps is None:
            eps = self.compute_eps(dist)
            if not 0 < eps < 1:
                raise ValueError(
                    f'{type(self).__name__}: the rho rule gave eps={eps:.4g}'
                    ' outside (0, 1); check the distance.')
            self.eps = eps
            info = ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else
                             f'{k}={v}' for k, v in self.eps_info.items())
            print_log(
                f'{type(self).__name__}: eps={eps:.4f} from rho={self.rho} '
                f'(kept for every later clustering; {info})',
                logger='current')
        if dist.is_sparse:
            bound = dist.unstored_distance.lower_bound()
            if self.eps >= bound:
                raise ValueError(
                    f'{type(self).__name__}: eps={self.eps:.4g} reaches the '
                    f'pairs the sparse distance does not store (>= '
                    f'{bound:.4g}), so DBSCAN would miss neighbours; use a '
                    'smaller eps or a dense distance.')
        return super().cluster(dist, context)
