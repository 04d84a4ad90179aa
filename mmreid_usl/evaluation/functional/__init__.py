# Copyright (c) mmreid_usl contributors. All rights reserved.
from .rank import evaluate_rank

__all__ = ['evaluate_rank']
