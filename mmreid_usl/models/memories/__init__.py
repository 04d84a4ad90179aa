# Copyright (c) mmreid_usl contributors. All rights reserved.
from .camera_proxy_memory import CameraProxyMemory
from .cluster_memory import ClusterMemory

__all__ = ['CameraProxyMemory', 'ClusterMemory']
