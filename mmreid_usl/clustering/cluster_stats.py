# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Agreement of pseudo-labels with true ids (diagnostics only)."""
from typing import Dict, Optional

import numpy as np
import torch
from sklearn.metrics import (adjusted_rand_score,
                             normalized_mutual_info_score)
from sklearn.metrics.cluster import pair_confusion_matrix

from mmreid_usl.structures.pseudo_label_result import (ArrayLike,
                                                       relabel_contiguous)


def _as_numpy(x: ArrayLike) -> np.ndarray:
    return np.asarray(
        x.cpu() if isinstance(x, torch.Tensor) else x).reshape(-1)


def _num_pairs(*keys: np.ndarray) -> int:
    """Pairs of samples that agree on every key: sum of C(n, 2) over the
    groups of equal key tuples (O(N), no N x N matrix). Hand-written for the
    camera-restricted counts, which sklearn's pair counting has no key
    for."""
    if len(keys[0]) == 0:
        return 0
    _, counts = np.unique(np.stack(keys, axis=1), axis=0, return_counts=True)
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def camera_stats(labels: ArrayLike, camids: ArrayLike) -> Dict[str, float]:
    """How camera-bound the clusters are (needs no true ids).

    Args:
        labels (array-like): Pseudo-labels (N,), -1 = outlier.
        camids (array-like): Camera ids (N,).

    Returns:
        dict: ``single_camera_clusters``, the fraction of clusters whose
        members all come from one camera (0 without clusters).
    """
    labels, camids = _as_numpy(labels), _as_numpy(camids)
    keep = labels >= 0
    if not keep.any():
        return dict(single_camera_clusters=0.0)
    pairs = np.unique(np.stack([labels[keep], camids[keep]], axis=1), axis=0)
    _, cams_per_cluster = np.unique(pairs[:, 0], return_counts=True)
    return dict(single_camera_clusters=float((cams_per_cluster == 1).mean()))


def cluster_stats(labels: ArrayLike,
                  true_ids: ArrayLike,
                  camids: Optional[ArrayLike] = None) -> Dict[str, float]:
    """Agreement of pseudo-labels with the true ids (diagnostics only).

    Outliers (-1) are counted as singleton clusters for ``nmi``/``ari``;
    ``ari_clustered`` uses only the clustered samples. Pair counts (of
    unordered pairs of distinct samples; outliers pair with nothing):
    ``pair_precision`` = same-cluster pairs that are same-id / same-cluster
    pairs, ``pair_recall`` = same-id pairs that are same-cluster / same-id
    pairs. With ``camids``, also ``cross_camera_recall``: the same-id pairs
    of DIFFERENT cameras that share a cluster / all such pairs (what
    cross-camera retrieval learns from), and :func:`camera_stats`.

    Args:
        labels (array-like): Pseudo-labels (N,), -1 = outlier.
        true_ids (array-like): True identities (N,).
        camids (array-like, optional): Camera ids (N,).

    Returns:
        dict: ``num_clusters``, ``num_outliers``, ``nmi``, ``ari``,
        ``ari_clustered``, ``pair_precision``, ``pair_recall`` [,
        ``cross_camera_recall``, ``single_camera_clusters``].
    """
    labels = relabel_contiguous(labels)
    true_ids = _as_numpy(true_ids)
    outlier = labels < 0
    num_clusters = int(labels.max()) + 1 if (~outlier).any() else 0
    singleton = labels.copy()
    singleton[outlier] = num_clusters + np.arange(int(outlier.sum()))
    clustered = ~outlier
    # ordered pairs: [[differ in both, same cluster only],
    #                 [same id only, same in both]]
    pairs = pair_confusion_matrix(true_ids, singleton) // 2
    both = int(pairs[1, 1])
    same_cluster = both + int(pairs[0, 1])
    same_id = both + int(pairs[1, 0])
    stats = dict(
        num_clusters=num_clusters,
        num_outliers=int(outlier.sum()),
        nmi=float(normalized_mutual_info_score(true_ids, singleton)),
        ari=float(adjusted_rand_score(true_ids, singleton)),
        ari_clustered=float(
            adjusted_rand_score(true_ids[clustered], labels[clustered]))
        if clustered.any() else 0.0,
        pair_precision=both / same_cluster if same_cluster else 0.0,
        pair_recall=both / same_id if same_id else 0.0)
    if camids is not None:
        camids = _as_numpy(camids)
        cross_id = same_id - _num_pairs(true_ids, camids)
        cross_both = both - _num_pairs(labels[clustered], true_ids[clustered],
                                       camids[clustered])
        stats['cross_camera_recall'] = (
            cross_both / cross_id if cross_id else 0.0)
        stats.update(camera_stats(labels, camids))
    return stats
