# Copyright (c) mmreid_usl contributors. All rights reserved.
"""L_MIP: instance contrast with DCMIP's multi-instance proxies."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.validation import check_choice, check_positive_int
from ..utils.precision import at_least_fp32

NEGATIVE_MODES = ('global', 'per_cluster')
HARDNESS = ('hardest', 'semi_hard', 'easiest')


@MODELS.register_module()
class MultiInstanceProxyLoss(nn.Module):
    r"""Instance contrastive loss :math:`\mathcal{L}_{MIP}` of DCMIP.

    Zou et al., "Discrepant and Multi-Instance Proxies for Unsupervised
    Person Re-Identification", ICCV 2023 (no official code; unofficial
    https://github.com/Trangle12/DCMIP "CMhard"), see
    ``docs/algorithms/dcmip.md``. With the instance proxies
    :math:`I \in \mathbb{R}^{C \times K \times D}`
    (:class:`InstanceProxyMemory`), a query :math:`q` of cluster :math:`y`
    and :math:`s_{c,k} = q \cdot I_{c,k}`, one positive :math:`s^+` is taken
    among :math:`\{s_{y,k}\}_k` and a set :math:`\mathcal{N}` of negatives
    among the other clusters' proxies:

    .. math::
        \mathcal{L}_q = -\log \frac{\exp(s^+/\tau)}
            {\exp(s^+/\tau) + \sum_{s \in \mathcal{N}} \exp(s/\tau)} ,

    averaged over the batch. ``hardness`` (supplement Table 2) picks

    - ``'hardest'`` (paper default): :math:`s^+ = \min_k s_{y,k}` (the
      least similar own proxy) and the MOST similar negatives;
    - ``'easiest'``: :math:`s^+ = \max_k s_{y,k}` and the LEAST similar
      negatives;
    - ``'semi_hard'`` (our definition, the material gives none):
      :math:`s^+` = the median own proxy (rank :math:`\lfloor (K-1)/2
      \rfloor` from the least similar) and, as FaceNet's semi-hard
      negatives (Schroff et al., CVPR 2015), the most similar negatives
      that are LESS similar than :math:`s^+` (fewer may exist: the missing
      ones are left out).

    ``negative_mode`` picks :math:`\mathcal{N}`:

    - ``'global'`` (paper, "global top-N hard negatives"): the
      ``num_negatives`` (:math:`N`, capped at :math:`(C-1)K`) selected
      proxies over the whole memory except cluster :math:`y`; :math:`N` is
      not in the available material (ours: 50);
    - ``'per_cluster'`` (unofficial code): one selected proxy from every
      other cluster (:math:`C-1` negatives; ``'hardest'``: each cluster's
      most similar proxy).

    The proxies get no gradient. The maths runs in fp32 (in float64 for a
    float64 model, :func:`at_least_fp32`).

    Args:
        temperature (float): :math:`\tau`. Defaults to 0.05.
        num_negatives (int): :math:`N` of ``'global'``. Defaults to 50.
        negative_mode (str): ``'global'`` or ``'per_cluster'``. Defaults to
            ``'global'``.
        hardness (str): ``'hardest'``, ``'semi_hard'`` or ``'easiest'``.
            Defaults to ``'hardest'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.05,
                 num_negatives: int = 50,
                 negative_mode: str = 'global',
                 hardness: str = 'hardest',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        check_choice('negative_mode', negative_mode, NEGATIVE_MODES)
        check_choice('hardness', hardness, HARDNESS)
        check_positive_int('num_negatives', num_negatives)
        self.temperature = temperature
        self.num_negatives = num_negatives
        self.negative_mode = negative_mode
        self.hardness = hardness
        self.loss_weight = loss_weight

    def _positive(self, own: Tensor) -> Tensor:
        """``(B,)`` positive similarity from the ``(B, K)`` own proxies."""
        if self.hardness == 'hardest':
            return own.min(dim=1).values
        if self.hardness == 'easiest':
            return own.max(dim=1).values
        rank = (own.shape[1] - 1) // 2
        return own.sort(dim=1).values[:, rank]

    def _negatives(self, sims: Tensor, own_mask: Tensor,
                   pos: Tensor) -> Tensor:
        """``(B, n)`` negative similarities (``-inf`` = left out)."""
        neg_inf = torch.tensor(float('-inf'), device=sims.device)
        if self.negative_mode == 'per_cluster':
            if self.hardness == 'hardest':
                rep = sims.max(dim=2).values
            elif self.hardness == 'easiest':
                rep = sims.min(dim=2).values
            else:
                below = sims < pos.view(-1, 1, 1)
                rep = torch.where(below, sims, neg_inf).max(dim=2).values
            # (B, C - 1): drop the own cluster's column
            return rep[~own_mask[:, :, 0]].view(len(sims), -1)
        flat = sims.flatten(1)
        own = own_mask.flatten(1)
        num = min(self.num_negatives, flat.shape[1] - int(own[0].sum()))
        if num <= 0:
            return flat.new_zeros(len(flat), 0)
        if self.hardness == 'easiest':
            return torch.topk(
                torch.where(own, -neg_inf, flat), num, dim=1,
                largest=False).values
        if self.hardness == 'semi_hard':
            own = own | (flat >= pos.unsqueeze(1))
        return torch.topk(torch.where(own, neg_inf, flat), num, dim=1).values

    def forward(self, feats: Tensor, proxies: Tensor,
                targets: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features.
            proxies (Tensor): ``(C, K, D)`` L2-normalised instance proxies.
            targets (Tensor): ``(B,)`` labels in ``0..C-1``.

        Returns:
            Tensor: Scalar loss.
        """
        if proxies.dim() != 3 or proxies.shape[0] == 0:
            raise RuntimeError('MultiInstanceProxyLoss needs (C, K, D) '
                               'instance proxies with C > 0, got '
                               f'{tuple(proxies.shape)}')
        num_clusters, num_inst, dim = proxies.shape
        with torch.autocast(device_type=feats.device.type, enabled=False):
            q = at_least_fp32(feats)
            bank = proxies.detach().clone().to(q.dtype).view(-1, dim)
            sims = q.mm(bank.t()).view(-1, num_clusters, num_inst)
            own_mask = torch.zeros_like(sims, dtype=torch.bool)
            own_mask[torch.arange(len(sims)), targets] = True
            pos = self._positive(sims[torch.arange(len(sims)), targets])
            neg = self._negatives(sims, own_mask, pos)
            logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
            logits = logits / self.temperature
            loss = F.cross_entropy(logits,
                                   logits.new_zeros(len(logits),
                                                    dtype=torch.long))
        return self.loss_weight * loss
