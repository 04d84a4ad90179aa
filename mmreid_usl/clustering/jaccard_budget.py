# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The pair budget of :class:`JaccardDistance`: the stored pairs of step 6
estimated from a sample of rows before any is allocated."""
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from .jaccard_encoding import _ragged_arange

#: Rows whose distances are evaluated to estimate the stored pairs before the
#: Jaccard step allocates them (all rows when there are fewer).
PAIR_SAMPLE_ROWS = 64
#: Approximate peak memory per stored pair, from the Jaccard step to the end
#: of DBSCAN (measured: 10,000 copies of one image, about 5e7 pairs, 7 GB).
BYTES_PER_PAIR = 140


class PairBudgetError(RuntimeError):
    """More pairs would be stored than ``JaccardDistance.max_pairs`` allows."""


class PairBudget:
    """The pair-budget check of :class:`JaccardDistance` (a mixin:
    ``self.max_pairs`` and ``self.max_distance`` are the distance's)."""

    def check_pair_budget(self,
                          v: sp.csr_matrix,
                          feats: Optional[torch.Tensor] = None,
                          index: Optional[np.ndarray] = None,
                          max_distance: Optional[float] = None) -> None:
        """Estimate the stored pairs of :meth:`_jaccard` before computing
        them, and raise if they exceed ``max_pairs``.

        The distances of ``PAIR_SAMPLE_ROWS`` rows drawn with a fixed seed
        (every row of a smaller set, then the count is exact) to all rows
        are computed exactly, in O(n) memory per row; ``N`` times their mean
        count of pairs below ``max_distance`` estimates the total. Only the
        check depends on the draw, never the distance. The exact count is
        checked again while the pairs are collected (:meth:`_jaccard_upper`).

        Args:
            v (scipy.sparse.csr_matrix): The query-expanded encoding V.
            feats (Tensor, optional): The features, to count exact
                duplicates for the message.
            index (np.ndarray, optional): The kNN lists (self at rank 0),
                likewise.
            max_distance (float, optional): The radius of the pairs counted.
                Defaults to ``self.max_distance``.

        Raises:
            PairBudgetError: The estimate exceeds ``max_pairs``.
        """
        if self.max_pairs is None:
            return
        if max_distance is None:
            max_distance = self.max_distance
        n = v.shape[0]
        if n * n <= self.max_pairs:
            return  # even every pair fits
        rows = np.arange(n) if n <= PAIR_SAMPLE_ROWS else np.sort(
            np.random.default_rng(0).choice(
                n, PAIR_SAMPLE_ROWS, replace=False))
        vt = v.T.tocsr()
        counts = [
            int((self._row_distances(v, vt, r) < max_distance).sum())
            for r in rows
        ]
        estimate = n * float(np.mean(counts))
        if estimate > self.max_pairs:
            raise PairBudgetError(
                self._budget_message(n, estimate, 'would keep about',
                                     feats, index, max_distance))

    def _row_distances(self, v: sp.csr_matrix, vt: sp.csr_matrix,
                       row: int) -> np.ndarray:
        """Step 6 for one row against all rows: the float32 ``d_J`` of the
        pairs ``(row, j)`` whose expanded sets overlap (other pairs are 1)."""
        cols = v.indices[v.indptr[row]:v.indptr[row + 1]]
        vals = v.data[v.indptr[row]:v.indptr[row + 1]]
        lens = (vt.indptr[cols + 1] - vt.indptr[cols]).astype(np.int64)
        src = _ragged_arange(vt.indptr[cols].astype(np.int64), lens)
        mins = np.minimum(np.repeat(vals, lens), vt.data[src])
        m = np.bincount(vt.indices[src], weights=mins,
                        minlength=v.shape[0])
        m32 = m[m > 0].astype(np.float32)
        dist = np.float32(1) - m32 / (np.float32(2) - m32)
        return np.maximum(dist, 0)

    def _count_stored(self, stored: int, rows, cols, parts: list, n: int,
                      max_distance: float) -> int:
        """Add a chunk's pairs to the running count of stored entries.

        Both triangles of the result are stored: 2 per pair j > i, 1 on
        the diagonal (``rows`` / ``cols``: numpy arrays or tensors). Past
        ``max_pairs`` the chunks collected so far (``parts``) are dropped
        before :class:`PairBudgetError` is raised, so that memory never
        holds much more than the budget.
        """
        stored += 2 * len(rows) - int((rows == cols).sum())
        if self.max_pairs is not None and stored > self.max_pairs:
            parts.clear()
            raise PairBudgetError(
                self._budget_message(n, stored, 'keep at least', None, None,
                                     max_distance))
        return stored

    def _budget_message(self, n: int, pairs: float, verb: str,
                        feats: Optional[torch.Tensor],
                        index: Optional[np.ndarray],
                        max_distance: float) -> str:
        """The :class:`PairBudgetError` text: the problem and what to do."""
        dup = ''
        if feats is not None and index is not None and index.shape[1] > 1:
            # the nearest other image of each row at distance 0: a copy
            x = feats.detach().float().cpu()
            gap = (x - x[torch.from_numpy(index[:, 1])]).abs().amax(1)
            dup = (f' {int((gap == 0).sum())} of the {n} images have an '
                   'exact copy (identical feature).')
        return (
            f'{type(self).__name__}: the {n} images {verb} {pairs:,.0f} '
            f'pairs with distance < max_distance={max_distance:g} '
            f'({pairs / n:,.0f} per image, {pairs / n / n:.0%} of all '
            'image pairs), more than the pair budget max_pairs='
            f'{self.max_pairs:,} (about '
            f'{self.max_pairs * BYTES_PER_PAIR / 1e9:.1f} GB). Re-ID data '
            'keeps 20-200 per image; this many means the images or their '
            'features are nearly all alike (many copies of one image, or an '
            'encoder that maps every image to the same feature), and most of '
            f'them would fall into one cluster.{dup} Check the training '
            'images for duplicates and the features; if the data really '
            'is this dense, raise the budget (e.g. --cfg-options '
            'default_hooks.pseudo_label.labeler.distance.max_pairs=N, '
            'max_pairs=None for none) or lower max_distance.')
