# Copyright (c) mmreid_usl contributors. All rights reserved.
from .data_preprocessor import ReIDDataPreprocessor
from .reid_encoder import ReIDEncoder
from .resizable_buffers import resize_buffers_for_loading

__all__ = ['ReIDDataPreprocessor', 'ReIDEncoder', 'resize_buffers_for_loading']
