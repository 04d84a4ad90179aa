# Copyright (c) mmreid_usl contributors. All rights reserved.
from .bn_neck import BNNeck

__all__ = ['BNNeck']
