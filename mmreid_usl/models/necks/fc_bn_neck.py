# Copyright (c) mmreid_usl contributors. All rights reserved.
"""FC -> BN -> ReLU embedding head ("Theory"'s embedding)."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid_usl.registry import MODELS


@MODELS.register_module()
class FCBNNeck(BaseModule):
    """Embedding head ``ReLU(BN(W x))``: a bias-free FC, BN, ReLU.

    The embedding of "Theory" (Song et al., "Unsupervised domain adaptive
    re-identification: Theory and practice", Pattern Recognition 2020;
    lsongx/DomainAdaptiveReID, ``reid/models/resnet.py``): a linear layer
    ``in_channels -> out_channels`` (2048 -> 2048 on ResNet-50) without
    bias, its weight drawn from N(0, 0.001²); a BatchNorm1d with weight 1
    and bias 0, both trained (unlike :class:`BNNeck`, whose bias is frozen);
    then a ReLU. Theory feeds the pooled feature (``pool5``) to it; its
    output is the second triplet feature of the adaptation stage and, after
    a dropout, the input of the identity classifier of the source
    pre-training (the dropout and the classifier belong to
    :class:`SupervisedReID`: ``id_dropout``, ``classifier_bias``).

    Args:
        in_channels (int): Pooled feature dimension (2048 for ResNet-50).
        out_channels (int, optional): Embedding dimension; None (default)
            keeps ``in_channels``, as Theory's ``num_features=2048``.
        with_relu (bool): End with a ReLU. Defaults to True (Theory).
        init_std (float): Standard deviation of the FC weight. Defaults to
            0.001 (Theory).
        init_cfg (dict, optional): Initialisation config; by default the
            FC weight is N(0, ``init_std``²) and the BN weight / bias 1 / 0.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: Optional[int] = None,
                 with_relu: bool = True,
                 init_std: float = 0.001,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Normal', std=init_std, layer='Linear'),
                dict(type='Constant', val=1, bias=0, layer='BatchNorm1d')
            ]
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.out_channels = in_channels if out_channels is None \
            else out_channels
        self.fc = nn.Linear(in_channels, self.out_channels, bias=False)
        self.bn = nn.BatchNorm1d(self.out_channels)
        self.relu = nn.ReLU(inplace=True) if with_relu else nn.Identity()
        nn.init.normal_(self.fc.weight, std=init_std)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)

    def forward(self, inputs: Union[torch.Tensor, Tuple[torch.Tensor]]
                ) -> torch.Tensor:
        """Embed the last pooled feature (``inputs`` as for
        :meth:`BNNeck.forward`).

        Returns:
            Tensor: ``(B, out_channels)`` embeddings (non-negative with the
            ReLU).
        """
        if isinstance(inputs, (tuple, list)):
            inputs = inputs[-1]
        return self.relu(self.bn(self.fc(inputs.flatten(1))))
