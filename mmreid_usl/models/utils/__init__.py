# Copyright (c) mmreid_usl contributors. All rights reserved.
from .batch_shuffle import grouped_forward, shuffle_bn_forward
from .data_preprocessor import ReIDDataPreprocessor
from .ibn import IBN
from .momentum_encoder import MomentumEncoder
from .reid_encoder import ReIDEncoder
from .resizable_buffers import resize_buffers_for_loading

__all__ = [
    'IBN', 'MomentumEncoder', 'grouped_forward', 'shuffle_bn_forward',
    'ReIDDataPreprocessor', 'ReIDEncoder', 'resize_buffers_for_loading'
]
