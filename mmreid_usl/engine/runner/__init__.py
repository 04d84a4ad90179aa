# Copyright (c) mmreid_usl contributors. All rights reserved.
from .loops import MomentumValLoop
from .reid_runner import ReIDRunner

__all__ = ['MomentumValLoop', 'ReIDRunner']
