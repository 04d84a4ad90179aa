# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Triplet loss: batch-hard mining, or Theory's all-later-positives mode."""
import math
from functools import reduce
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.validation import (check_choice,
                                         check_optional_positive_int)
from ..utils.precision import at_least_fp32

DISTANCES = ('euclidean', 'squared_euclidean', 'cosine')
#: The mining modes of :class:`TripletLoss`.
MINING_MODES = ('batch_hard', 'semi')


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


def label_run_gcd(targets: Tensor) -> int:
    """Greatest common divisor of the lengths of the runs of equal
    consecutive labels (``[0, 0, 0, 1, 1, 1, 1, 1, 1]`` -> 3).

    For a batch of consecutive blocks of K images of one identity each (an
    identity may fill two adjacent blocks) it is K as soon as one run is a
    single block.
    """
    t = targets.reshape(-1)
    if t.numel() == 0:
        return 0
    change = torch.nonzero(t[1:] != t[:-1]).flatten() + 1
    edges = [0] + change.tolist() + [t.numel()]
    lengths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    return reduce(math.gcd, lengths)


@MODELS.register_module()
class TripletLoss(nn.Module):
    r"""Triplet loss with batch-hard or Theory's "semi" mining.

    ``mining='batch_hard'`` (default): Hermans et al., "In Defense of the
    Triplet Loss for Person Re-Identification"
    (https://arxiv.org/abs/1703.07737). For every anchor :math:`a` of a
    P x K batch, the hardest positive (largest distance, same label) and the
    hardest negative (smallest distance, other label) give

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_{a=1}^{B}\max\big(0,\;
            m + \max_{p: y_p = y_a} d(a, p)
              - \min_{n: y_n \neq y_a} d(a, n)\big),

    i.e. ``MarginRankingLoss(margin)`` on (hardest negative, hardest
    positive), as in open-reid, the stage-1 (source) training of "Theory"
    (Song et al., Pattern Recognition 2020,
    https://github.com/lsongx/DomainAdaptiveReID, ``source_train.py``:
    ``use_semi=False``, margin 0.5) and Bag of Tricks (Luo et al., CVPRW
    2019, margin 0.3). Anchors with no positive or no negative in the batch
    are skipped.

    ``mining='semi'``: the adaptation loss of Theory (its
    ``reid/loss/triplet.py`` with ``use_semi=True``, the default of the
    ``TripletLoss`` that ``selftraining.py`` builds). The batch is read as P
    consecutive blocks of K images (row ``r`` is in block ``r // K``, as its
    ``RandomIdentitySampler`` emits them). Every anchor :math:`a` is paired
    with every positive :math:`p` that comes LATER in its block
    (:math:`a < p`, both in block :math:`b`) against the anchor's hardest
    negative over the whole batch:

    .. math::
        \mathcal{L} = \frac{1}{T}\sum_{b}\sum_{a < p \in b}\max\big(0,\;
            m + d(a, p) - \min_{n: y_n \neq y_a} d(a, n)\big),
        \qquad T = P\,\frac{K(K-1)}{2},

    the mean over all :math:`T` terms, zeros included (``MarginRankingLoss``
    with its default mean). The positives are defined by position in the
    block, as in Theory; a block whose labels differ is an error (the
    sampler did not emit whole blocks). K is ``num_instances``, or, when
    None, the greatest common divisor of the lengths of the runs of equal
    consecutive labels of the batch (:func:`label_run_gcd`): the sampler's
    K as soon as one identity of the batch fills exactly one block, which is
    always the case with ``PseudoIdentitySampler(samples_per_epoch=
    'clusters')`` (every cluster once per epoch); set ``num_instances`` to
    rule out the degenerate batch whose identities all fill several
    adjacent blocks. Anchors without a negative in the batch are skipped
    (Theory's code would fail on them).

    Both modes use the distance ``metric`` (Theory: ``'euclidean'``, the
    clamped square root above) in fp32 (fp64 for a float64 model) on the
    raw (by default not normalised) features; ``margin=None`` gives the
    soft-margin variant
    :math:`\log(1 + e^{d_{ap} - d_{an}})` for each term. A batch without any
    term gives a zero loss that keeps the graph.

    Args:
        margin (float, optional): :math:`m`; None for the soft margin.
            Defaults to 0.3.
        metric (str): ``'euclidean'`` (default, as the official codes),
            ``'squared_euclidean'`` or ``'cosine'``.
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False.
        mining (str): ``'batch_hard'`` (default) or ``'semi'``.
        num_instances (int, optional): K of the ``'semi'`` blocks; None
            reads it from the batch (see above). Defaults to None.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 margin: Optional[float] = 0.3,
                 metric: str = 'euclidean',
                 normalize_feature: bool = False,
                 mining: str = 'batch_hard',
                 num_instances: Optional[int] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if margin is not None and margin < 0:
            raise ValueError(f'margin must be >= 0 or None, got {margin}')
        check_choice('metric', metric, DISTANCES)
        check_choice('mining', mining, MINING_MODES)
        check_optional_positive_int('num_instances', num_instances)
        self.margin = margin
        self.metric = metric
        self.normalize_feature = normalize_feature
        self.mining = mining
        self.num_instances = num_instances
        self.loss_weight = loss_weight

    def _hinge(self, gap: Tensor) -> Tensor:
        """Per-term loss of ``d_ap - d_an``."""
        if self.margin is None:
            return F.softplus(gap)
        return F.relu(gap + self.margin)

    def _block_size(self, targets: Tensor) -> int:
        """K of the ``'semi'`` blocks, checked against the batch."""
        n = targets.numel()
        k = self.num_instances or label_run_gcd(targets)
        if n % k:
            raise ValueError(
                f"TripletLoss(mining='semi') reads the batch as blocks of "
                f'K={k} images of one identity, but the batch has {n} '
                'images. Use a batch size that is a multiple of the '
                "sampler's num_instances, with drop_last=True.")
        blocks = targets.reshape(n // k, k)
        if not bool((blocks == blocks[:, :1]).all()):
            raise ValueError(
                f"TripletLoss(mining='semi') needs the batch as consecutive "
                f'blocks of K={k} images of one identity (a P x K sampler '
                "such as PseudoIdentitySampler(camera_mode='ignore')), but "
                'a block mixes labels. Check the sampler and num_instances.')
        return k

    def forward(self, feats: Tensor, targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` features.
            targets (Tensor): ``(B,)`` integer labels; for ``'semi'`` in
                blocks of K consecutive rows.

        Returns:
            Tensor: Scalar loss.
        """
        if feats.dim() != 2 or targets.shape != feats.shape[:1]:
            raise ValueError('TripletLoss needs (B, D) features and (B,) '
                             f'targets, got {tuple(feats.shape)} and '
                             f'{tuple(targets.shape)}')
        if len(feats) == 0:
            return feats.sum() * 0.0
        with torch.autocast(device_type=feats.device.type, enabled=False):
            x = at_least_fp32(feats)
            if self.normalize_feature:
                x = F.normalize(x, dim=1)
            dist = pairwise_distance(x, self.metric)
            same = targets[:, None] == targets[None, :]
            neg_mask = ~same
            d_an = dist.masked_fill(same, float('inf')).min(1).values
            has_neg = neg_mask.any(1)
            if self.mining == 'semi':
                k = self._block_size(targets)
                idx = torch.arange(len(x), device=x.device)
                block = idx // k
                # anchor a (row), a later positive p (column) of its block
                terms = (block[:, None] == block[None, :]) & (
                    idx[None, :] > idx[:, None]) & has_neg[:, None]
                if not bool(terms.any()):
                    return feats.sum() * 0.0
                gap = (dist - d_an[:, None])[terms]
                loss = self._hinge(gap).mean()
            else:
                eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
                pos_mask = same & ~eye
                valid = pos_mask.any(1) & has_neg
                if not bool(valid.any()):
                    return feats.sum() * 0.0
                d_ap = dist.masked_fill(~pos_mask,
                                        float('-inf')).max(1).values
                loss = self._hinge(d_ap[valid] - d_an[valid]).mean()
        return self.loss_weight * loss
