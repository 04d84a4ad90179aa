# Copyright (c) mmreid_usl contributors. All rights reserved.
"""k-means clustering (faiss)."""
from typing import Optional

import numpy as np

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_int
from mmreid_usl.structures import relabel_contiguous
from .base import BaseClusterer, DistanceMatrix, LabelingContext


@TASK_UTILS.register_module()
class KMeansClusterer(BaseClusterer):
    """k-means (Lloyd) with ``faiss.Kmeans``.

    Minimises ``Σ_i ||x_i - c_{y_i}||²`` over ``num_clusters`` centroids; no
    outliers. Empty clusters are dropped, so the labels are relabelled to
    0..C-1 with C <= ``num_clusters``.

    Args:
        num_clusters (int): Number of centroids, ``>= 2`` (checked when
            built, like the other integer arguments).
        niter (int): Lloyd iterations. Defaults to 20.
        nredo (int): Restarts, the best objective is kept. Defaults to 1.
        spherical (bool): Normalise centroids (spherical k-means). Defaults
            to False.
        seed (int): Seed of the initialisation. Defaults to 1234.
        gpu (bool): Use faiss GPU if available. Defaults to False.
    """

    def __init__(self,
                 num_clusters: int,
                 niter: int = 20,
                 nredo: int = 1,
                 spherical: bool = False,
                 seed: int = 1234,
                 gpu: bool = False) -> None:
        owner = type(self).__name__
        self.num_clusters = check_int(
            owner,
            'num_clusters',
            num_clusters,
            low=2,
            why='Fewer than two clusters give no contrastive target.')
        self.niter = check_int(owner, 'niter', niter, low=1)
        self.nredo = check_int(owner, 'nredo', nredo, low=1)
        check_int(owner, 'seed', seed)
        self.spherical = spherical
        self.seed = seed
        self.gpu = gpu

    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Cluster ``context.features`` (N, D); ``distance`` is ignored.

        Returns:
            np.ndarray: int64 labels (N,), 0..C-1.
        """
        import faiss
        feats = self.features_of(context)
        x = np.ascontiguousarray(
            feats.detach().float().cpu().numpy(), dtype=np.float32)
        k = min(self.num_clusters, x.shape[0])
        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=self.niter,
            nredo=self.nredo,
            spherical=self.spherical,
            seed=self.seed,
            gpu=self.gpu and faiss.get_num_gpus() > 0,
            verbose=False)
        km.train(x)
        _, assign = km.index.search(x, 1)
        return relabel_contiguous(assign.ravel())
