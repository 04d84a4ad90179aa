# Copyright (c) mmreid_usl contributors. All rights reserved.
from .base import BaseUSLReID, NonFiniteLossError
from .base_momentum import BaseMomentumUSLReID
from .cluster_contrast import ClusterContrast
from .dcmip import DCMIP
from .ice import ICE
from .supervised_reid import SupervisedReID
from .theory import Theory

__all__ = [
    'BaseMomentumUSLReID', 'BaseUSLReID', 'ClusterContrast', 'DCMIP', 'ICE',
    'NonFiniteLossError'
]
__all__ += ['SupervisedReID', 'Theory']
