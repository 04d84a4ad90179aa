# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Pseudo-labelling algorithms: kNN, Jaccard distance, clusterers."""
from .dbscan import DBSCANClusterer
from .infomap import InfomapClusterer
from .jaccard import JaccardDistance
from .kmeans import KMeansClusterer
from .knn import knn_search
from .pseudo_label_result import (PseudoLabelResult, cluster_stats,
                                  relabel_contiguous)

__all__ = [
    'knn_search', 'JaccardDistance', 'DBSCANClusterer', 'InfomapClusterer',
    'KMeansClusterer', 'PseudoLabelResult', 'cluster_stats',
    'relabel_contiguous'
]
