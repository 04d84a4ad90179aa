# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Pseudo-labelling: kNN, Jaccard distance, clusterers and the labeler."""
from .base import (BaseClusterer, BaseDistance, DistanceMatrix,
                   LabelingContext, as_distance_matrix)
from .cluster_stats import camera_stats, cluster_stats
from .dbscan import DBSCANClusterer
from .infomap import InfomapClusterer
from .jaccard import JaccardDistance
from .jaccard_torch import JACCARD_DEVICES, resolve_jaccard_device
from .kmeans import KMeansClusterer
from .knn import knn_search
from .oracle import OracleClusterer
from .pseudo_labeler import LabelingOutput, PseudoLabeler
from .rho_dbscan import RhoDBSCANClusterer, UnstoredDistance
from .source_aware_jaccard import SourceAwareJaccardDistance

__all__ = [
    'knn_search', 'JaccardDistance', 'DBSCANClusterer', 'InfomapClusterer',
    'KMeansClusterer', 'OracleClusterer', 'PseudoLabeler',
    'cluster_stats', 'camera_stats'
]
__all__ += [
    'RhoDBSCANClusterer', 'SourceAwareJaccardDistance', 'UnstoredDistance'
]
__all__ += ['JACCARD_DEVICES', 'resolve_jaccard_device']
__all__ += [
    'BaseDistance', 'BaseClusterer', 'DistanceMatrix', 'LabelingContext',
    'LabelingOutput', 'as_distance_matrix'
]
