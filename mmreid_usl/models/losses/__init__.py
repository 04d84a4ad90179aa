# Copyright (c) mmreid_usl contributors. All rights reserved.
from .agnostic_proxy_loss import AgnosticProxyLoss
from .cluster_nce_loss import ClusterNCELoss
from .cross_camera_proxy_loss import CrossCameraProxyLoss
from .discrepant_cluster_nce_loss import DiscrepantClusterNCELoss
from .gds_loss import GDSLoss
from .hard_instance_contrastive_loss import HardInstanceContrastiveLoss
from .multi_instance_proxy_loss import MultiInstanceProxyLoss
from .soft_instance_consistency_loss import SoftInstanceConsistencyLoss
from .triplet_loss import TripletLoss

__all__ = [
    'AgnosticProxyLoss', 'ClusterNCELoss', 'CrossCameraProxyLoss',
    'DiscrepantClusterNCELoss', 'HardInstanceContrastiveLoss',
    'MultiInstanceProxyLoss', 'SoftInstanceConsistencyLoss'
]
__all__ += ['GDSLoss', 'TripletLoss']
