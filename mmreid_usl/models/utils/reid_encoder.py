# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The ReID encoder: backbone -> global pooling -> BNNeck."""
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.build import build_module


@MODELS.register_module()
class ReIDEncoder(BaseModule):
    """Backbone, global pooling and neck (BNNeck) as one module.

    The encoder is the unit that a momentum (EMA) copy duplicates, so it is a
    module of its own rather than three attributes of the algorithm. The
    width of the neck (``in_channels``) is derived from the backbone when
    the neck config leaves it out, so a config changes the backbone in one
    place.

    Args:
        backbone (dict | nn.Module): e.g. ``dict(type='mmpretrain.ResNet',
            depth=50, strides=(1, 2, 2, 1), out_indices=(3, ))`` (last stride
            1) with ``init_cfg=dict(type='Pretrained',
            checkpoint='torchvision://resnet50')``.
        pooling (dict | nn.Module): Global pooling, e.g.
            ``dict(type='mmpretrain.GeneralizedMeanPooling', p=3.)`` or
            ``dict(type='mmpretrain.GlobalAveragePooling')``.
        neck (dict | nn.Module): ``dict(type='BNNeck')`` or
            ``dict(type='FCBNNeck')``; ``in_channels`` defaults to the
            backbone's output width.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Module],
                 pooling: Union[dict, nn.Module],
                 neck: Union[dict, nn.Module] = dict(type='BNNeck'),
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.backbone = build_module(backbone)
        self.pooling = build_module(pooling)
        if isinstance(neck, dict) and neck.get('in_channels') is None:
            neck = dict(neck, in_channels=self._backbone_width())
        self.neck = build_module(neck)

    @torch.no_grad()
    def _backbone_width(self) -> int:
        """Channels of the backbone's last output (one tiny forward)."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            param = next(self.backbone.parameters())
            out = self.backbone(
                torch.zeros(1, 3, 64, 32, device=param.device,
                            dtype=param.dtype))
        finally:
            self.backbone.train(was_training)
        if isinstance(out, (tuple, list)):
            out = out[-1]
        return int(out.shape[1])

    @property
    def pooled_dim(self) -> int:
        """int: Dimension of the pooled feature (the neck's input)."""
        return self.neck.in_channels

    @property
    def feat_dim(self) -> int:
        """int: Dimension of the output feature (the neck's output:
        ``out_channels`` when the neck has one, e.g. :class:`FCBNNeck`)."""
        return getattr(self.neck, 'out_channels', self.neck.in_channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` normalised images.

        Returns:
            Tensor: ``(B, D)`` neck output (post-BN, or post-ReLU for
            :class:`FCBNNeck`), NOT L2-normalised.
        """
        return self.neck(self.pooling(self.backbone(inputs)))
