# Copyright (c) mmreid_usl contributors. All rights reserved.
from mmcv.transforms import LoadImageFromFile, RandomFlip, Resize
from mmpretrain.datasets.transforms import (ColorJitter, GaussianBlur,
                                            RandomCrop, RandomErasing)

from mmreid_usl.registry import TRANSFORMS
from .formatting import PackReIDInputs
from .loading import LoadReIDImage
from .processing import REID_ERASE_FILL_BGR, ReIDRandomErasing
from .wrappers import MultiView

# Make the library transforms the ReID pipelines use reachable under the
# ``mmreid_usl`` scope by their plain names, as mmpretrain does for mmcv's.
for _t in (LoadImageFromFile, Resize, RandomFlip, RandomCrop, GaussianBlur,
           RandomErasing, ColorJitter):
    TRANSFORMS.register_module(module=_t)

__all__ = [
    'LoadReIDImage', 'PackReIDInputs', 'MultiView', 'ReIDRandomErasing',
    'REID_ERASE_FILL_BGR'
]
