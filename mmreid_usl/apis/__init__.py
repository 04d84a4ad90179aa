# Copyright (c) mmreid_usl contributors. All rights reserved.
from .gallery_index import GalleryIndex
from .inference import extract_features, init_model
from .inferencer import ReIDInferencer
from .model_zoo import list_models

__all__ = [
    'init_model', 'extract_features', 'ReIDInferencer', 'GalleryIndex',
    'list_models'
]
