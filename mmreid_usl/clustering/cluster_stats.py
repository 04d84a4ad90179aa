# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The pseudo-label structure every clusterer's output is turned into."""
from dataclasses import dataclass, field
from typing import Dict, Union

import numpy as np
import torch
from sklearn.metrics import (adjusted_rand_score,
                             normalized_mutual_info_score)

ArrayLike = Union[np.ndarray, torch.Tensor, list]


def relabel_contiguous(labels: ArrayLike) -> np.ndarray:
    """Map labels to 0..C-1 by sorted old label, keeping -1 (outlier).

    Any negative label is treated as an outlier.

    Args:
        labels (array-like): Integer labels (N,).

    Returns:
        np.ndarray: int64 labels (N,), clusters numbered 0..C-1.
    """
    labels = np.asarray(
        labels.cpu() if isinstance(labels, torch.Tensor) else labels,
        dtype=np.int64).reshape(-1)
    out = np.full(labels.shape, -1, dtype=np.int64)
    valid = labels >= 0
    if valid.any():
        _, out[valid] = np.unique(labels[valid], return_inverse=True)
    return out


def cluster_stats(labels: ArrayLike, true_ids: ArrayLike) -> Dict[str, float]:
    """Agreement of pseudo-labels with the true ids (diagnostics only).

    Outliers (-1) are counted as singleton clusters for ``nmi``/``ari``;
    ``ari_clustered`` uses only the clustered samples.

    Args:
        labels (array-like): Pseudo-labels (N,), -1 = outlier.
        true_ids (array-like): True identities (N,).

    Returns:
        dict: ``num_clusters``, ``num_outliers``, ``nmi``, ``ari``,
        ``ari_clustered``.
    """
    labels = relabel_contiguous(labels)
    true_ids = np.asarray(
        true_ids.cpu() if isinstance(true_ids, torch.Tensor) else true_ids
    ).reshape(-1)
    outlier = labels < 0
    num_clusters = int(labels.max()) + 1 if (~outlier).any() else 0
    singleton = labels.copy()
    singleton[outlier] = num_clusters + np.arange(int(outlier.sum()))
    clustered = ~outlier
    return dict(
        num_clusters=num_clusters,
        num_outliers=int(outlier.sum()),
        nmi=float(normalized_mutual_info_score(true_ids, singleton)),
        ari=float(adjusted_rand_score(true_ids, singleton)),
        ari_clustered=float(
            adjusted_rand_score(true_ids[clustered], labels[clustered]))
        if clustered.any() else 0.0)


@dataclass
class PseudoLabelResult:
    """Pseudo-labels of one clustering round and the cluster centroids.

    Attributes:
        labels (torch.LongTensor): (N,) labels 0..C-1, -1 for outliers.
        num_clusters (int): C.
        num_outliers (int): Number of -1 labels.
        centroids (torch.Tensor): (C, D) mean feature of each cluster (not
            normalised); shape (0, D) when there is no cluster.
        extras (dict): Free-form extra outputs (e.g. camera proxies).
    """
    labels: torch.Tensor
    num_clusters: int
    num_outliers: int
    centroids: torch.Tensor
    extras: dict = field(default_factory=dict)

    @classmethod
    def from_labels(cls, feats: torch.Tensor, labels: ArrayLike,
                    **extras) -> 'PseudoLabelResult':
        """Build from features and raw labels (relabelled contiguously).

        Centroids are ``c_j = (1/|C_j|) Σ_{i∈C_j} f_i``, computed with one
        ``index_add_`` (no loop over clusters). Zero clusters are allowed.

        Args:
            feats (Tensor): Features (N, D) the clustering ran on.
            labels (array-like): Labels (N,), negative = outlier.
            **extras: Stored in ``extras``.
        """
        lab = torch.from_numpy(relabel_contiguous(labels)).to(feats.device)
        valid = lab >= 0
        num_clusters = int(lab.max()) + 1 if bool(valid.any()) else 0
        feats = feats.detach()
        sums = feats.new_zeros((num_clusters, feats.shape[1]))
        sums.index_add_(0, lab[valid], feats[valid])
        counts = torch.bincount(lab[valid], minlength=num_clusters)
        centroids = sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)
        return cls(
            labels=lab,
            num_clusters=num_clusters,
            num_outliers=int((~valid).sum()),
            centroids=centroids,
            extras=dict(extras))

    def cluster_stats(self, true_ids: ArrayLike) -> Dict[str, float]:
        """NMI / ARI of the labels against ``true_ids``; see
        :func:`cluster_stats`."""
        return cluster_stats(self.labels, true_ids)
