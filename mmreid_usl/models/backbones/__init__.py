# Copyright (c) mmreid_usl contributors. All rights reserved.
from .mobilenet_v2 import ReIDMobileNetV2, convert_torchvision_mobilenet_v2

__all__ = ['ReIDMobileNetV2', 'convert_torchvision_mobilenet_v2']
