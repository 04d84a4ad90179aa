# Copyright (c) mmreid_usl contributors. All rights reserved.
from .agnostic_proxy_loss import AgnosticProxyLoss
from .cross_camera_proxy_loss import CrossCameraProxyLoss
from .hard_instance_contrastive_loss import HardInstanceContrastiveLoss
from .soft_instance_consistency_loss import SoftInstanceConsistencyLoss

__all__ = [
    'AgnosticProxyLoss', 'CrossCameraProxyLoss', 'HardInstanceContrastiveLoss',
    'SoftInstanceConsistencyLoss'
]
