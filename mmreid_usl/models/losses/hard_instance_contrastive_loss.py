# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE's hard instance contrastive loss (Eq. 9, code ViewContrastiveLoss)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from ..utils.precision import at_least_fp32


@MODELS.register_module()
class HardInstanceContrastiveLoss(nn.Module):
    r"""Contrast each anchor with its hardest positive and all negatives.

    ICE (Chen et al., ICCV 2021, Eq. 9, https://arxiv.org/abs/2103.16364;
    official code https://github.com/chenhao2345/ICE, ``ViewContrastiveLoss``;
    ``docs/algorithms/ice.md#hard-instance-contrastive-loss``). With
    :math:`q_i` the normalised online feature of view 1 and
    :math:`k_j` the normalised momentum feature of view 2 of every batch
    item:

    .. math::
        s^+_i = \min_{j:\,y_j=y_i} q_i\cdot k_j, \qquad
        \mathcal{L}_{h\_ins} = -\frac{1}{B}\sum_i \log
            \frac{e^{s^+_i/\tau_h}}{e^{s^+_i/\tau_h} +
            \sum_{j:\,y_j\neq y_i} e^{q_i\cdot k_j/\tau_h}} .

    The hardest positive is searched over all momentum features of the
    anchor's pseudo-identity, its own second view included; the negatives are
    all other-identity items, :math:`J=(N_P-1)N_K` of them in a P×K batch.
    The official code flattens the negatives into fixed-width rows, which
    needs exact P×K blocks (the ICE "more camera" sampler guarantees them);
    this implementation masks instead, so it gives the same value on P×K
    batches and stays defined on ragged ones.

    Args:
        temperature (float): :math:`\tau_h`. Defaults to 0.1.
        loss_weight (float): :math:`\lambda_h`. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self,
                query: Tensor,
                keys: Tensor,
                targets: Tensor,
                key_targets: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            query (Tensor): ``(B, D)`` online features (normalised here).
            keys (Tensor): ``(B', D)`` momentum features (normalised here; no
                gradient): this batch, or the batch all-gathered over the
                ranks so that a DDP run sees the same in-batch keys as the
                official DataParallel run.
            targets (Tensor): ``(B,)`` pseudo-labels of the queries.
            key_targets (Tensor, optional): ``(B',)`` pseudo-labels of the
                keys. Defaults to ``targets``.

        Returns:
            Tensor: Scalar loss.
        """
        with torch.autocast(device_type=query.device.type, enabled=False):
            # fp32 (fp64 for a float64 model)
            q = F.normalize(at_least_fp32(query), dim=1)
            k = F.normalize(keys.detach().to(q.dtype), dim=1)
            sim = q @ k.t()  # (B, B')
            if key_targets is None:
                key_targets = targets
            same = targets.unsqueeze(1) == key_targets.unsqueeze(0)
            # Hardest positive: lowest similarity among same-id keys,
            # selected on the detached similarity (ties: the first).
            hard_idx = sim.detach().masked_fill(~same, float('inf')).argmin(1)
            keep = ~same
            keep[torch.arange(len(q), device=q.device), hard_idx] = True
            logits = sim.masked_fill(~keep, float('-inf')) / self.temperature
            loss = F.cross_entropy(logits, hard_idx)
        return self.loss_weight * loss
