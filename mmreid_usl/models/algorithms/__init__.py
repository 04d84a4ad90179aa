# Copyright (c) mmreid_usl contributors. All rights reserved.
from .base import BaseUSLReID
from .cluster_contrast import ClusterContrast
from .ice import ICE

__all__ = ['BaseUSLReID', 'ClusterContrast', 'ICE']
