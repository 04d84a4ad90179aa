# Copyright (c) mmreid_usl contributors. All rights reserved.
from .rank import evaluate_rank
from .rerank import ReRankedDistance, k_reciprocal_rerank

__all__ = ['evaluate_rank', 'k_reciprocal_rerank', 'ReRankedDistance']
