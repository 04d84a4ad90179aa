# Copyright (c) mmreid_usl contributors. All rights reserved.
"""What a sparse distance matrix says about the pairs it does not store."""
import math
from typing import Any, NamedTuple, Optional

import numpy as np
import scipy.sparse as sp


class UnstoredDistance(NamedTuple):
    """What a sparse distance matrix says about the pairs it does not store.

    Every off-diagonal pair ``(i, j)`` missing from the matrix has a
    distance ``>= min(cap, base + row[i] + row[j])`` (``row`` None: 0), with
    equality when ``cap`` is infinite. A distance returns it in the
    :class:`~mmreid_usl.clustering.DistanceMatrix` it computes; a bare
    sparse matrix is read with the convention of :class:`JaccardDistance`
    (every missing pair is at distance exactly 1).
    """
    base: float = 1.0
    row: Optional[np.ndarray] = None
    cap: float = math.inf

    @property
    def exact(self) -> bool:
        """bool: The missing pairs' values are known exactly."""
        return math.isinf(self.cap)

    def lower_bound(self) -> float:
        """A lower bound of every missing pair's distance."""
        low = self.base
        if self.row is not None and len(self.row):
            low += 2 * float(np.min(self.row))
        return min(self.cap, low)

    def block(self, rows: np.ndarray, n: int) -> np.ndarray:
        """``(len(rows), n)`` exact values of the missing pairs of ``rows``
        (only meaningful when :attr:`exact`)."""
        if self.row is None:
            return np.full((len(rows), n), self.base, dtype=np.float64)
        row = np.asarray(self.row, dtype=np.float64)
        return self.base + row[rows][:, None] + row[None, :]


def unstored_distance(dist: Any) -> UnstoredDistance:
    """The :class:`UnstoredDistance` of a ``DistanceMatrix`` (that of a bare
    sparse matrix: every missing pair at 1)."""
    from .base import DistanceMatrix
    if isinstance(dist, DistanceMatrix):
        return dist.unstored_distance
    if sp.issparse(dist):
        return UnstoredDistance()
    raise TypeError(f'not a distance matrix: {type(dist).__name__}')
