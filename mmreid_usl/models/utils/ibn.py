# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Instance-Batch Normalization (IBN-Net)."""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from torch import Tensor

from mmreid_usl.registry import MODELS


@MODELS.register_module()
class IBN(nn.Module):
    r"""Instance-Batch Normalization of IBN-Net-a.

    Pan et al., "Two at Once: Enhancing Learning and Generalization Capacities
    via IBN-Net", ECCV 2018 (https://arxiv.org/abs/1807.09441; official code
    https://github.com/XingangPan/IBN-Net). The first
    :math:`h = \lfloor r C\rfloor` channels are instance-normalised (with a
    learnable affine transform), the other :math:`C - h` batch-normalised:

    .. math::
        \mathrm{IBN}(x) = \big[\,\mathrm{IN}(x_{1..h}) \,\|\,
        \mathrm{BN}(x_{h+1..C})\,\big].

    The sub-modules are named ``IN`` and ``BN`` as in the IBN-Net release, so
    its checkpoints (``layer1.0.bn1.IN.weight``, ``layer1.0.bn1.BN.running_
    mean``...) load without renaming.

    Args:
        num_features (int): Channels :math:`C`.
        ratio (float): Fraction :math:`r` of instance-normalised channels.
            Defaults to 0.5.
        norm_cfg (dict, optional): Config of the batch-norm half (e.g.
            ``dict(type='SyncBN')``). Defaults to ``dict(type='BN')``.
    """

    def __init__(self,
                 num_features: int,
                 ratio: float = 0.5,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        half = int(num_features * ratio)
        if not 0 < half < num_features:
            raise ValueError(
                f'IBN needs 0 < int(num_features * ratio) < num_features, '
                f'got num_features={num_features}, ratio={ratio}.')
        self.num_features = num_features
        self.half = half
        self.IN = nn.InstanceNorm2d(half, affine=True)
        _, self.BN = build_norm_layer(norm_cfg or dict(type='BN'),
                                      num_features - half)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(B, C, H, W)``."""
        x_in, x_bn = torch.split(x, [self.half, self.num_features - self.half],
                                 dim=1)
        return torch.cat([self.IN(x_in.contiguous()),
                          self.BN(x_bn.contiguous())], dim=1)
