# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Triplet loss with batch-hard mining."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS

DISTANCES = ('euclidean', 'squared_euclidean', 'cosine')


def pairwise_distance(feats: Tensor, metric: str = 'euclidean') -> Tensor:
    r"""All-pairs distance matrix ``(B, B)`` of the rows of ``feats``.

    - ``'euclidean'``: :math:`\sqrt{\max(\|x_i\|^2 + \|x_j\|^2 - 2x_i\cdot
      x_j, 10^{-12})}` (the clamp keeps the gradient finite at 0, as
      open-reid's triplet loss does);
    - ``'squared_euclidean'``: the same without the square root;
    - ``'cosine'``: :math:`1 - \hat x_i\cdot\hat x_j`.
    """
    if metric not in DISTANCES:
        raise ValueError(f'metric must be one of {DISTANCES}, got {metric!r}')
    if metric == 'cosine':
        x = F.normalize(feats, dim=1)
        return 1 - x.mm(x.t())
    sq = (feats * feats).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * feats.mm(feats.t())).clamp(
        min=1e-12)
    return d2 if metric == 'squared_euclidean' else d2.sqrt()


@MODELS.register_module()
class TripletLoss(nn.Module):
    r"""Triplet loss with batch-hard mining.

    Hermans et al., "In Defense of the Triplet Loss for Person
    Re-Identification" (https://arxiv.org/abs/1703.07737). For every anchor
    :math:`a` of a P x K batch, the hardest positive (largest distance, same
    label) and the hardest negative (smallest distance, other label) give

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_{a=1}^{B}\max\big(0,\;
            m + \max_{p: y_p = y_a} d(a, p)
              - \min_{n: y_n \neq y_a} d(a, n)\big),

    i.e. ``MarginRankingLoss(margin)`` on (hardest negative, hardest
    positive), as in open-reid / "Theory" (Song et al., Pattern Recognition
    2020, https://github.com/lsongx/DomainAdaptiveReID, margin 0.5) and
    Bag of Tricks (Luo et al., CVPRW 2019, margin 0.3). ``margin=None``
    gives the soft-margin variant :math:`\log(1 + e^{d_{ap} - d_{an}})`.
    Anchors with no positive or no negative in the batch are skipped; a
    batch without any valid anchor gives a zero loss that keeps the graph.
    Computed in fp32 on the raw (by default not normalised) features.

    Args:
        margin (float, optional): :math:`m`; None for the soft margin.
            Defaults to 0.3.
        metric (str): ``'euclidean'`` (default, as the official codes),
            ``'squared_euclidean'`` or ``'cosine'``.
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 margin: float = 0.3,
                 metric: str = 'euclidean',
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ValueError(f'margin must be >= 0 or None, got {margin}')
        if metric not in DISTANCES:
            raise ValueError(
                f'metric must be one of {DISTANCES}, got {metric!r}')
        self.margin = margin
        self.metric = metric
        self.normalize_feature = normalize_feature
        self.loss_weight = loss_weight

    def forward(self, feats: Tensor, targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` features.
            targets (Tensor): ``(B,)`` integer labels.

        Returns:
            Tensor: Scalar loss.
        """
        if feats.dim() != 2 or targets.shape != feats.shape[:1]:
            raise ValueError('TripletLoss needs (B, D) features and (B,) '
                             f'targets, got {tuple(feats.shape)} and '
                             f'{tuple(targets.shape)}')
        with torch.autocast(device_type=feats.device.type, enabled=False):
            x = feats.float()
            if self.normalize_feature:
                x = F.normalize(x, dim=1)
            dist = pairwise_distance(x, self.metric)
            same = targets[:, None] == targets[None, :]
            eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
            pos_mask = same & ~eye
            neg_mask = ~same
            valid = pos_mask.any(1) & neg_mask.any(1)
            if not bool(valid.any()):
                return feats.sum() * 0.0
            d_ap = dist.masked_fill(~pos_mask, float('-inf')).max(1).values
            d_an = dist.masked_fill(~neg_mask, float('inf')).min(1).values
            d_ap, d_an = d_ap[valid], d_an[valid]
            if self.margin is None:
                loss = F.softplus(d_ap - d_an).mean()
            else:
                loss = F.relu(d_ap - d_an + self.margin).mean()
        return self.loss_weight * loss
