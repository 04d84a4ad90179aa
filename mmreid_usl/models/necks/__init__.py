# Copyright (c) mmreid_usl contributors. All rights reserved.
from .bn_neck import BNNeck
from .fc_bn_neck import FCBNNeck

__all__ = ['BNNeck', 'FCBNNeck']
