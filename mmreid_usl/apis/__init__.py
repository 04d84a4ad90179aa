# Copyright (c) mmreid_usl contributors. All rights reserved.
from .gallery_index import GalleryIndex
from .inference import extract_features, init_model
from .inferencer import ReIDInferencer

__all__ = ['init_model', 'extract_features', 'ReIDInferencer', 'GalleryIndex']
