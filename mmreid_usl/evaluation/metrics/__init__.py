# Copyright (c) mmreid_usl contributors. All rights reserved.
from .reid_metric import ReIDMetric

__all__ = ['ReIDMetric']
