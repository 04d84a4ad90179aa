# Copyright (c) mmreid_usl contributors. All rights reserved.
"""BNNeck: the BatchNorm1d after global pooling used by all our papers."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid_usl.registry import MODELS


@MODELS.register_module()
class BNNeck(BaseModule):
    """BatchNorm1d on the pooled feature, with a frozen zero bias.

    ``f = BN(flatten(x))`` with BN weight initialised to 1 and bias to 0, the
    bias excluded from training (``requires_grad=False``), no embedding FC,
    no dropout — the head of Cluster Contrast, ICE and DCMIP
    (``docs/algorithms/common.md#backbone-and-bnneck``; "Bag of Tricks",
    Luo et al., CVPRW 2019, https://arxiv.org/abs/1903.07071).

    Args:
        in_channels (int): Feature dimension (2048 for ResNet-50).
        freeze_bias (bool): Keep the BN bias at zero. Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 freeze_bias: bool = True,
                 init_cfg: Optional[dict] = dict(
                     type='Constant', val=1, bias=0, layer='BatchNorm1d')):
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.bn = nn.BatchNorm1d(in_channels)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(not freeze_bias)

    def forward(self, inputs: Union[torch.Tensor, Tuple[torch.Tensor]]
                ) -> torch.Tensor:
        """Normalise the last pooled feature.

        Args:
            inputs (Tensor | tuple[Tensor]): ``(B, C)`` or ``(B, C, 1, 1)``
                pooled features, or a tuple of them (the last is used).

        Returns:
            Tensor: ``(B, C)`` post-BN features.
        """
        if isinstance(inputs, (tuple, list)):
            inputs = inputs[-1]
        return self.bn(inputs.flatten(1))
