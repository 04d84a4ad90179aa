# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE's camera-agnostic proxy loss (paper Eq. 5, code ``loss_ccl``)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from ..utils.precision import at_least_fp32


@MODELS.register_module()
class AgnosticProxyLoss(nn.Module):
    r"""Cross-entropy of online features against the cluster proxies.

    ICE (Chen et al., ICCV 2021, Eq. 5, https://arxiv.org/abs/2103.16364),
    with the label smoothing of the official code
    (https://github.com/chenhao2345/ICE, ``loss_ccl``;
    ``docs/algorithms/ice.md#camera-agnostic-proxy-loss``):

    .. math::
        z_{ia} = \frac{f_i \cdot p_a}{\tau_a}, \qquad
        \mathcal{L}_{agnostic} = -\frac{1}{B}\sum_i \sum_a t_{ia}
            \log \frac{\exp z_{ia}}{\sum_{a'} \exp z_{ia'}}, \qquad
        t_{ia} = (1-\varepsilon)\,[a = y_i] + \frac{\varepsilon}{C}.

    ``f`` is the RAW post-BN online feature (not normalised) and :math:`p_a`
    the un-renormalised mean momentum feature of cluster ``a``, exactly as in
    the official code (so the effective logit scale is large).
    ``label_smoothing=0`` gives the paper's plain softmax log loss. The
    maths runs in fp32 (fp64 for a float64 model, :func:`at_least_fp32`).

    Args:
        temperature (float): :math:`\tau_a`. Defaults to 0.5.
        label_smoothing (float): :math:`\varepsilon`. Defaults to 0.1 (code;
            the paper uses 0).
        normalize_features (bool): L2-normalise ``f`` first. Defaults to
            False (code and paper).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.5,
                 label_smoothing: float = 0.1,
                 normalize_features: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.label_smoothing = label_smoothing
        self.normalize_features = normalize_features
        self.loss_weight = loss_weight

    def forward(self, feats: Tensor, centroids: Tensor,
                targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` online features.
            centroids (Tensor): ``(C, D)`` cluster proxies (no gradient).
            targets (Tensor): ``(B,)`` pseudo-labels in ``0..C-1``.

        Returns:
            Tensor: Scalar loss.
        """
        feats = at_least_fp32(feats)
        if self.normalize_features:
            feats = F.normalize(feats, dim=1)
        with torch.autocast(device_type=feats.device.type, enabled=False):
            logits = feats @ centroids.detach().to(
                feats.dtype).t() / self.temperature
            loss = F.cross_entropy(
                logits, targets, label_smoothing=self.label_smoothing)
        return self.loss_weight * loss
