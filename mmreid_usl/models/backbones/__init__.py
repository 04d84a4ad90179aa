# Copyright (c) mmreid_usl contributors. All rights reserved.
from .mobilenet_v2 import ReIDMobileNetV2, convert_torchvision_mobilenet_v2
from .resnet_ibn import ResNetIBN, convert_ibn_net_state_dict

__all__ = [
    'ReIDMobileNetV2', 'convert_torchvision_mobilenet_v2', 'ResNetIBN',
    'convert_ibn_net_state_dict'
]
