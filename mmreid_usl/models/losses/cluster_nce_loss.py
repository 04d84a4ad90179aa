# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ClusterNCE: InfoNCE of features against one proxy per cluster."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from ..utils.precision import at_least_fp32


@MODELS.register_module()
class ClusterNCELoss(nn.Module):
    r"""ClusterNCE loss of Cluster Contrast (and DCMIP's cluster proxies).

    Dai et al., "Cluster Contrast for Unsupervised Person
    Re-Identification", ACCV 2022 (https://arxiv.org/abs/2103.11568, Eq. 3;
    official code alibaba/cluster-contrast-reid ``cm.py``). For an
    L2-normalised query :math:`q` with pseudo-label :math:`y` and cluster
    proxies :math:`M_1..M_C`:

    .. math::
        \mathcal{L}_q = -\log \frac{\exp(q \cdot M_y / \tau)}
                                  {\sum_{c=1}^{C} \exp(q \cdot M_c / \tau)} .

    The proxies get no gradient and are snapshotted (cloned) before use, so
    an in-place memory update right after the loss (the official order)
    leaves the backward pass intact. The maths runs in fp32 (fp64 for a
    float64 model, :func:`at_least_fp32`).

    Args:
        temperature (float): :math:`\tau`. Defaults to 0.05 (official).
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.05,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, feats: Tensor, proxies: Tensor,
                targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features.
            proxies (Tensor): ``(C, D)`` L2-normalised cluster proxies.
            targets (Tensor): ``(B,)`` labels in ``0..C-1``.

        Returns:
            Tensor: Scalar loss.
        """
        if proxies.shape[0] == 0:
            raise RuntimeError('ClusterNCELoss: no cluster proxies (the '
                               'clustering produced zero clusters?).')
        with torch.autocast(device_type=feats.device.type, enabled=False):
            q = at_least_fp32(feats)
            snapshot = proxies.detach().clone().to(q.dtype)
            logits = q.mm(snapshot.t()) / self.temperature
            loss = F.cross_entropy(logits, targets)
        return self.loss_weight * loss
