# Copyright (c) mmreid_usl contributors. All rights reserved.
from .base import BaseUSLReID
from .cluster_contrast import ClusterContrast

__all__ = ['BaseUSLReID', 'ClusterContrast']
