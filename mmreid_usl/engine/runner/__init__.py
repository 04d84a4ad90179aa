# Copyright (c) mmreid_usl contributors. All rights reserved.
from .loops import MomentumValLoop

__all__ = ['MomentumValLoop']
