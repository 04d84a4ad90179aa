# Copyright (c) mmreid_usl contributors. All rights reserved.
from .cluster_memory import ClusterMemory

__all__ = ['ClusterMemory']
