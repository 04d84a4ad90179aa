# Copyright (c) mmreid_usl contributors. All rights reserved.
"""L_DCP: ClusterNCE against each of DCMIP's discrepant cluster proxies."""
import torch
import torch.nn as nn
from torch import Tensor

from mmreid_usl.registry import MODELS
from .cluster_nce_loss import ClusterNCELoss

MODES = ('mean', 'hybrid')


@MODELS.register_module()
class DiscrepantClusterNCELoss(nn.Module):
    r"""The discrepant-cluster-proxy loss :math:`\mathcal{L}_{DCP}` of DCMIP.

    Zou et al., "Discrepant and Multi-Instance Proxies for Unsupervised
    Person Re-Identification", ICCV 2023 (Eq. 8; no official code,
    unofficial https://github.com/Trangle12/DCMIP), see
    ``docs/algorithms/dcmip.md``. With :math:`M` proxy types
    :math:`P^1..P^M` (``(M, C, D)``) and the ClusterNCE of proxy type
    :math:`m` (:class:`ClusterNCELoss`, batch mean)

    .. math::
        \mathcal{L}^m = \frac{1}{B}\sum_{q} -\log
            \frac{\exp(q \cdot P^m_{y} / \tau)}
                 {\sum_{c=1}^{C} \exp(q \cdot P^m_c / \tau)} ,

    ``mode='mean'`` (default, our reading of the paper) is

    .. math::
        \mathcal{L}_{DCP} = \frac{1}{M} \sum_{m=1}^{M} \mathcal{L}^m ,

    and ``mode='hybrid'`` is the unofficial code's form, a relu-margin
    :math:`r` on the batch-mean loss of proxy type ``margin_index``
    (:math:`i`):

    .. math::
        \mathcal{L}_{DCP} = \frac{1}{M} \Big( \max(0, \mathcal{L}^{i} - r)
            + \sum_{m \ne i} \mathcal{L}^m \Big)

    (with :math:`M = 2`, :math:`i = 0`, :math:`r = 0.2`:
    :math:`0.5 (\max(0, \mathcal{L}^1 - 0.2) + \mathcal{L}^2)`, the margin on
    the sequentially updated proxy).

    Args:
        temperature (float): :math:`\tau`. Defaults to 0.05.
        mode (str): ``'mean'`` or ``'hybrid'``. Defaults to ``'mean'``.
        margin (float): :math:`r` of ``'hybrid'``. Defaults to 0.2.
        margin_index (int): Proxy type that gets the margin in
            ``'hybrid'``. Defaults to 0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.05,
                 mode: str = 'mean',
                 margin: float = 0.2,
                 margin_index: int = 0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        self.cluster_nce = ClusterNCELoss(temperature=temperature)
        self.mode = mode
        self.margin = margin
        self.margin_index = margin_index
        self.loss_weight = loss_weight

    def forward(self, feats: Tensor, proxies: Tensor,
                targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features.
            proxies (Tensor): ``(M, C, D)`` L2-normalised proxies (no
                gradient; snapshotted by :class:`ClusterNCELoss`).
            targets (Tensor): ``(B,)`` labels in ``0..C-1``.

        Returns:
            Tensor: Scalar loss.
        """
        if proxies.dim() != 3:
            raise ValueError('proxies must be (M, C, D), got '
                             f'{tuple(proxies.shape)}')
        num_types = proxies.shape[0]
        if self.mode == 'hybrid' and not 0 <= self.margin_index < num_types:
            raise ValueError(f'margin_index {self.margin_index} is not a '
                             f'proxy type of {num_types}')
        terms = []
        for m in range(num_types):
            term = self.cluster_nce(feats, proxies[m], targets)
            if self.mode == 'hybrid' and m == self.margin_index:
                term = torch.relu(term - self.margin)
            terms.append(term)
        return self.loss_weight * torch.stack(terms).mean()
