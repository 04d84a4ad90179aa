# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Evaluation: chunked ranking functions and the ReID metric."""
from .functional import evaluate_rank
from .metrics import ReIDMetric

__all__ = ['evaluate_rank', 'ReIDMetric']
