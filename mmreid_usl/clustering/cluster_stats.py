# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Agreement of pseudo-labels with true ids (diagnostics only)."""
from typing import Dict

import numpy as np
import torch
from sklearn.metrics import (adjusted_rand_score,
                             normalized_mutual_info_score)

from mmreid_usl.structures.pseudo_label_result import (ArrayLike,
                                                       relabel_contiguous)


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
