# Copyright (c) mmreid_usl contributors. All rights reserved.
from .ranklist import (MATCH_COLOR, MISMATCH_COLOR, NEUTRAL_COLOR,
                       QUERY_COLOR, RankItem, RankRow, draw_ranklist,
                       draw_search_results)

__all__ = [
    'MATCH_COLOR', 'MISMATCH_COLOR', 'NEUTRAL_COLOR', 'QUERY_COLOR',
    'RankItem', 'RankRow', 'draw_ranklist', 'draw_search_results'
]
