# Copyright (c) mmreid_usl contributors. All rights reserved.
from .camera_strategies import (BaseCameraStrategy, IgnoreCameras, MoreCamera,
                                PreferOtherCamera, build_camera_strategy)
from .pseudo_identity_sampler import PseudoIdentitySampler

__all__ = [
    'PseudoIdentitySampler', 'BaseCameraStrategy', 'IgnoreCameras',
    'MoreCamera', 'PreferOtherCamera', 'build_camera_strategy'
]
