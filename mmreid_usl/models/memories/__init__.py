# Copyright (c) mmreid_usl contributors. All rights reserved.
from .base_memory import BaseMemory
from .camera_proxy_memory import CameraProxyMemory
from .cluster_memory import ClusterMemory
from .discrepant_cluster_memory import DiscrepantClusterMemory
from .instance_proxy_memory import InstanceProxyMemory

__all__ = [
    'BaseMemory', 'CameraProxyMemory', 'ClusterMemory',
    'DiscrepantClusterMemory', 'InstanceProxyMemory'
]
