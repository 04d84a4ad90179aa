# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Infomap clustering of a kNN similarity graph."""
import os.path as osp
import tempfile
from typing import Optional

import numpy as np

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_choice, check_int, check_real
from .base import BaseClusterer, DistanceMatrix, LabelingContext
from .knn import knn_search
from mmreid_usl.structures import relabel_contiguous


@TASK_UTILS.register_module()
class InfomapClusterer(BaseClusterer):
    """Infomap (Rosvall & Bergstrom, PNAS 2008) on a kNN similarity graph.

    The alternative clusterer of Cluster Contrast (Dai et al., ACCV 2022,
    https://arxiv.org/abs/2103.11568; official script
    ``examples/cluster_contrast_train_usl_infomap.py`` of
    https://github.com/alibaba/cluster-contrast-reid, README command
    ``--eps 0.5 --k1 15 --k2 4``). The kNN list of every point has ``k``
    entries INCLUDING the point itself (the official ``k1``), so each point
    is linked to its ``k - 1`` nearest other points whose cosine similarity
    ``s_ij = 1 - d²_ij / 2`` (L2-normalised features) is at least ``min_sim``
    (the official ``eps``), with weight ``s_ij``. The two-level map equation
    is minimised on this directed graph; modules with fewer than
    ``min_cluster_size`` members, i.e. at most ``min_cluster_size - 1`` (the
    official ``k2 = 4``, "clusters of <= 4 images are outliers"), and points
    without any edge become outliers (-1). Uses the ``infomap`` package.

    Args:
        k (int): Size of each kNN list, the point itself included (the
            official ``k1``). Defaults to 15 (14 neighbours).
        min_sim (float): Minimum cosine similarity of an edge. Defaults
            to 0.5.
        min_cluster_size (int): Smaller modules become outliers. Defaults
            to 5 (the official ``k2 = 4``: modules of <= 4 are dropped).
        num_trials (int): Infomap restarts (best kept). Defaults to 1.
        seed (int): Infomap seed. Defaults to 123.
        knn_backend (str): See :func:`knn_search`. Defaults to ``'auto'``.
    """

    def __init__(self,
                 k: int = 15,
                 min_sim: float = 0.5,
                 min_cluster_size: int = 5,
                 num_trials: int = 1,
                 seed: int = 123,
                 knn_backend: str = 'auto') -> None:
        owner = type(self).__name__
        check_int(owner, 'k', k, low=2, why='k counts the point itself.')
        check_real(
            owner,
            'min_sim',
            min_sim,
            -1,
            1,
            high_inclusive=False,
            why='It is a cosine similarity; 1 or more keeps no edge.')
        check_int(owner, 'min_cluster_size', min_cluster_size, low=1)
        check_int(owner, 'num_trials', num_trials, low=1)
        check_int(owner, 'seed', seed)
        check_choice('knn_backend', knn_backend, ('auto', 'faiss', 'torch'),
                     owner)
        self.k = k
        self.min_sim = min_sim
        self.min_cluster_size = min_cluster_size
        self.num_trials = num_trials
        self.seed = seed
        self.knn_backend = knn_backend

    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Cluster ``context.features`` (N, D); ``distance`` is ignored
        (Infomap works on the feature kNN graph, as in Cluster Contrast).

        Returns:
            np.ndarray: int64 labels (N,), 0..C-1, -1 = outlier.
        """
        import infomap
        feats = self.features_of(context)
        n = feats.shape[0]
        k = min(self.k, n)
        # knn_search puts the query itself at rank 0 (ties included), so
        # column 0 is the point and columns 1..k-1 its k-1 neighbours.
        sqdist, index = knn_search(feats.detach().float(), k,
                                   backend=self.knn_backend)
        sim = (1 - sqdist[:, 1:] / 2).cpu().numpy().astype(np.float64)
        nbr = index[:, 1:].cpu().numpy()
        src = np.repeat(np.arange(n), k - 1).reshape(n, k - 1)
        keep = sim >= self.min_sim
        im = infomap.Infomap(
            two_level=True,
            directed=True,
            silent=True,
            num_trials=self.num_trials,
            seed=self.seed)
        im.add_links(
            zip(src[keep].tolist(), nbr[keep].tolist(), sim[keep].tolist()))
        labels = np.full(n, -1, dtype=np.int64)
        if keep.any():
            im.run()
            # Read the modules back through a .clu file: iterating infomap's
            # SWIG result objects segfaults when faiss (another SWIG module)
            # is imported too.
            with tempfile.TemporaryDirectory() as tmp:
                path = osp.join(tmp, 'modules.clu')
                im.write_clu(path)
                clu = np.loadtxt(path, comments='#', ndmin=2)
            labels[clu[:, 0].astype(np.int64)] = clu[:, 1].astype(np.int64)
        valid = labels >= 0
        if valid.any():
            sizes = np.bincount(labels[valid])
            small = sizes[labels] < self.min_cluster_size
            labels[valid & small] = -1
        return relabel_contiguous(labels)
