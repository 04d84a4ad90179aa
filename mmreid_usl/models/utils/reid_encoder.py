# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The ReID encoder: backbone -> pooling neck -> BNNeck."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid_usl.registry import MODELS


@MODELS.register_module()
class ReIDEncoder(BaseModule):
    """Backbone, global pooling and BNNeck as one module.

    The encoder is the unit that a momentum (EMA) copy duplicates, so it is a
    module of its own rather than three attributes of the algorithm.

    Args:
        backbone (dict | nn.Module): e.g. ``dict(type='mmpretrain.ResNet',
            depth=50, strides=(1, 2, 2, 1), out_indices=(3, ))`` (last stride
            1, §0.3) with ``init_cfg=dict(type='Pretrained',
            checkpoint='torchvision://resnet50')``.
        neck (dict | nn.Module): Global pooling, e.g.
            ``dict(type='mmpretrain.GeneralizedMeanPooling', p=3.)`` or
            ``dict(type='mmpretrain.GlobalAveragePooling')``.
        head (dict | nn.Module): ``dict(type='BNNeck', in_channels=2048)``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module],
                 head: Union[dict, nn.Module],
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.backbone = MODELS.build(backbone) if isinstance(
            backbone, dict) else backbone
        self.neck = MODELS.build(neck) if isinstance(neck, dict) else neck
        self.head = MODELS.build(head) if isinstance(head, dict) else head

    @property
    def feat_dim(self) -> int:
        """int: Dimension of the output feature."""
        return self.head.in_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            Tensor: ``(B, D)`` post-BN features, NOT L2-normalised.
        """
        return self.head(self.neck(self.backbone(inputs)))
