# Copyright (c) mmreid_usl contributors. All rights reserved.
from .inference import extract_features, init_model

__all__ = ['init_model', 'extract_features']
