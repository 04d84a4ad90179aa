# Copyright (c) mmreid_usl contributors. All rights reserved.
from .camera_proxies import CameraProxies
from .pseudo_label_result import (LABEL_SOURCES, LABELS_FROM,
                                  PseudoLabelResult, cluster_means,
                                  relabel_contiguous)
from .reid_data_sample import ReIDDataSample

__all__ = [
    'ReIDDataSample', 'PseudoLabelResult', 'cluster_means',
    'relabel_contiguous', 'LABELS_FROM', 'LABEL_SOURCES', 'CameraProxies'
]
