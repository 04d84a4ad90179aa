# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE's soft instance consistency loss (Eq. 10-12, code ``loss_kl``)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from ..utils.precision import at_least_fp32


@MODELS.register_module()
class SoftInstanceConsistencyLoss(nn.Module):
    r"""KL divergence between augmented and clean in-batch similarities.

    ICE (Chen et al., ICCV 2021, Eq. 10-12, https://arxiv.org/abs/2103.16364;
    official code https://github.com/chenhao2345/ICE, ``loss_kl``;
    ``docs/algorithms/ice.md#soft-instance-consistency-loss``). With
    :math:`q_i` the normalised online feature of the strong view,
    :math:`k_j` the normalised momentum feature of the second strong view and
    :math:`w_j` the normalised momentum feature of the un-augmented view:

    .. math::
        P_{ij} = \mathrm{softmax}_j(q_i\cdot k_j/\tau_s), \qquad
        Q_{ij} = \mathrm{softmax}_j(w_i\cdot w_j/\tau_s),

    .. math::
        \mathcal{L}_{s\_ins} = \frac{1}{B}\sum_i\sum_j Q_{ij}
            (\log Q_{ij} - \log P_{ij}) = \mathrm{KL}(Q\,\|\,P)

    over all ``B`` batch items (the anchor included). This is the official
    code's direction (``KLDivLoss(log P, Q, 'batchmean')``); the paper writes
    :math:`D_{KL}(P\|Q)`, available as ``direction='p_q'``.

    Args:
        temperature (float): :math:`\tau_s`. Defaults to 0.4.
        direction (str): ``'q_p'`` = KL(Q||P) (code) or ``'p_q'`` = KL(P||Q)
            (paper). Defaults to ``'q_p'``.
        loss_weight (float): :math:`\lambda_s`. Defaults to 10.0.
    """

    def __init__(self,
                 temperature: float = 0.4,
                 direction: str = 'q_p',
                 loss_weight: float = 10.0) -> None:
        super().__init__()
        if direction not in ('q_p', 'p_q'):
            raise ValueError(f"direction must be 'q_p' or 'p_q', got "
                             f'{direction!r}')
        self.temperature = temperature
        self.direction = direction
        self.loss_weight = loss_weight

    def forward(self,
                query: Tensor,
                keys: Tensor,
                weak: Tensor,
                weak_keys: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            query (Tensor): ``(B, D)`` online features of the strong view.
            keys (Tensor): ``(B', D)`` momentum features of the second strong
                view (no gradient); ``B' > B`` when all-gathered over ranks.
            weak (Tensor): ``(B, D)`` momentum features of the un-augmented
                view of the queries' images (no gradient).
            weak_keys (Tensor, optional): ``(B', D)`` momentum weak features
                aligned with ``keys``. Defaults to ``weak``.

        Returns:
            Tensor: Scalar loss.
        """
        with torch.autocast(device_type=query.device.type, enabled=False):
            # fp32 (fp64 for a float64 model)
            q = F.normalize(at_least_fp32(query), dim=1)
            k = F.normalize(keys.detach().to(q.dtype), dim=1)
            w = F.normalize(weak.detach().to(q.dtype), dim=1)
            wk = w if weak_keys is None else F.normalize(
                weak_keys.detach().to(q.dtype), dim=1)
            log_p = F.log_softmax(q @ k.t() / self.temperature, dim=1)
            log_q = F.log_softmax(w @ wk.t() / self.temperature, dim=1)
            if self.direction == 'q_p':
                loss = F.kl_div(
                    log_p, log_q, reduction='batchmean', log_target=True)
            else:
                loss = F.kl_div(
                    log_q, log_p, reduction='batchmean', log_target=True)
        return self.loss_weight * loss
