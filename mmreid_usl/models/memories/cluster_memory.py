# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster-level memory of Cluster Contrast (and DCMIP's cluster proxies)."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils.dist import all_gather_cat
from mmreid_usl.utils.validation import check_choice
from mmreid_usl.utils.deprecation import renamed_kwargs
from ..utils.precision import at_least_fp32
from .base_memory import BaseMemory

UPDATE_MODES = ('momentum', 'hard', 'mean')
INIT_MODES = ('mean', 'random')


@MODELS.register_module()
class ClusterMemory(BaseMemory):
    r"""One L2-normalised proxy per pseudo-identity (cluster).

    Cluster Contrast (Dai et al., "Cluster Contrast for Unsupervised Person
    Re-Identification", ACCV 2022, https://arxiv.org/abs/2103.11568;
    official code alibaba/cluster-contrast-reid), see
    ``docs/algorithms/cluster_contrast.md``.

    At every re-clustering the memory :math:`M \in \mathbb{R}^{C\times D}` is
    rebuilt (``init_mode``): ``'mean'`` (official code) takes the
    L2-normalised cluster means, ``'random'`` (the paper's Eq. 1) the
    feature of one member drawn uniformly (seeded by ``seed`` and the number
    of resets, so every rank draws the same). After the loss of each
    iteration the proxies are updated with the (all-gathered) batch, with
    :math:`m` = ``old_weight``, the weight of the OLD entry:

    - ``'momentum'`` (official default since 11/2021): for each sample
      :math:`(x, y)` in batch order,
      :math:`M_y \leftarrow \mathrm{norm}(m M_y + (1 - m) x)`;
    - ``'hard'`` (the paper's Eq. 2, ``--use-hard``): per identity the least
      similar instance :math:`x_{hard} = \arg\min_{x: y(x)=y} x \cdot M_y`,
      :math:`M_y \leftarrow \mathrm{norm}(m M_y + (1 - m) x_{hard})`;
    - ``'mean'`` (DCMIP's batch-mean proxy): per identity the mean
      :math:`\bar x_y` of its batch instances,
      :math:`M_y \leftarrow \mathrm{norm}(m M_y + (1 - m) \bar x_y)`.

    The ClusterNCE loss itself is :class:`ClusterNCELoss`; it reads
    ``memory.features`` as the proxies before this update. All memory maths
    runs in fp32 (fp64 for a float64 model).

    Args:
        feat_dim (int): Feature dimension D.
        old_weight (float): :math:`m`, weight of the OLD entry in an update.
            Defaults to 0.2 (the official argparse default; its README
            commands use 0.1).
        update_mode (str): ``'momentum'``, ``'hard'`` or ``'mean'``.
        init_mode (str): ``'mean'`` or ``'random'``. Defaults to ``'mean'``.
        seed (int): Seed of the ``'random'`` initialisation. Defaults to 0.
        encoder (str, optional): Encoder whose bank the memory is built
            from; None = the clustered bank.
        init_cfg (dict, optional): Initialisation config.
    """

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 feat_dim: int,
                 old_weight: float = 0.2,
                 update_mode: str = 'momentum',
                 init_mode: str = 'mean',
                 seed: int = 0,
                 encoder: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(encoder=encoder, init_cfg=init_cfg)
        check_choice('update_mode', update_mode, UPDATE_MODES)
        check_choice('init_mode', init_mode, INIT_MODES)
        if not 0.0 <= old_weight <= 1.0:
            raise ValueError(f'old_weight must be in [0, 1], got {old_weight}')
        self.feat_dim = feat_dim
        self.old_weight = old_weight
        self.update_mode = update_mode
        self.init_mode = init_mode
        self.seed = seed
        self.register_buffer('features', torch.zeros(0, feat_dim))
        self.register_buffer('num_resets', torch.zeros((), dtype=torch.long))

    @property
    def num_clusters(self) -> int:
        """int: Number of rows (clusters) in the memory."""
        return self.features.shape[0]

    @property
    def needs_bank_rows(self) -> bool:
        """bool: ``init_mode='random'`` reads a member's row of the bank;
        ``'mean'`` only the centroids (:attr:`BaseMemory.needs_bank_rows`)."""
        return self.init_mode == 'random'

    @torch.no_grad()
    def reset(self, result: PseudoLabelResult) -> None:
        """Rebuild the proxies from a new clustering (see ``init_mode``)."""
        if self.init_mode == 'random' and result.num_clusters > 0:
            proxies = self._random_members(
                self.bank(result), result.labels, result.num_clusters)
        else:
            proxies = result.centroids_of(self.encoder)
        self.set_proxies(proxies)
        self.num_resets += 1

    @torch.no_grad()
    def set_proxies(self, proxies: Tensor) -> None:
        """Replace the memory by the L2-normalised rows of ``proxies``.

        Args:
            proxies (Tensor): ``(C, D)``; ``C`` may be 0.
        """
        if proxies.dim() != 2 or proxies.shape[1] != self.feat_dim:
            raise ValueError(f'proxies must be (C, {self.feat_dim}), got '
                             f'{tuple(proxies.shape)}')
        self.features = F.normalize(
            at_least_fp32(proxies), dim=1).to(self.features.device)

    def _random_members(self, feats: Tensor, labels: Tensor,
                        num_clusters: int) -> Tensor:
        """One uniformly drawn member feature per cluster (paper Eq. 1)."""
        gen = torch.Generator().manual_seed(self.seed + int(self.num_resets))
        labels = labels.cpu()
        keys = torch.rand(len(labels), generator=gen)
        # order by (cluster, random key): the member with the smallest key
        # of each cluster wins
        order = torch.argsort(keys)
        order = order[labels[order] >= 0]
        order = order[torch.argsort(labels[order], stable=True)]
        first = torch.ones(len(order), dtype=torch.bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        winners = order[first]
        if len(winners) != num_clusters:
            raise RuntimeError('labels must be contiguous in [0, C)')
        return feats[winners.to(feats.device)]

    def forward(self, feats: Tensor) -> Tensor:
        """``(B, C)`` fp32 cosine similarities ``feats @ M.T`` (no grad to M).

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features.
        """
        if self.num_clusters == 0:
            raise RuntimeError(
                'ClusterMemory is empty: set_pseudo_labels() has not been '
                'called or the clustering produced zero clusters.')
        with torch.autocast(device_type=feats.device.type, enabled=False):
            q = at_least_fp32(feats)
            return q.mm(self.features.detach().clone().to(q.dtype).t())

    @torch.no_grad()
    def update(self,
               feats: Tensor,
               targets: Tensor,
               camids: Optional[Tensor] = None) -> None:
        """Update the proxies with this iteration's batch (all ranks);
        the arguments of :meth:`BaseMemory.update` (``camids`` unused)."""
        feats = all_gather_cat(at_least_fp32(feats.detach()).contiguous())
        targets = all_gather_cat(targets.contiguous())
        with torch.autocast(device_type=feats.device.type, enabled=False):
            if self.update_mode == 'momentum':
                self._momentum_update(feats, targets)
            elif self.update_mode == 'hard':
                self._hard_update(feats, targets)
            else:
                self._mean_update(feats, targets)

    def _momentum_update(self, feats: Tensor, targets: Tensor) -> None:
        """Sequential per-sample update, vectorised over identities.

        Samples of different identities touch different rows, so only the
        order within an identity matters: step ``r`` applies the ``r``-th
        occurrence of every identity at once, which equals the official
        one-sample-at-a-time loop.
        """
        m = self.old_weight
        order = torch.argsort(targets, stable=True)
        sorted_t = targets[order]
        # rank of each sample among the samples of its identity (batch order)
        starts = torch.ones_like(sorted_t, dtype=torch.bool)
        starts[1:] = sorted_t[1:] != sorted_t[:-1]
        first_pos = torch.cummax(
            torch.where(starts, torch.arange(len(order), device=order.device),
                        torch.zeros_like(order)), dim=0).values
        occurrence = torch.empty_like(order)
        occurrence[order] = torch.arange(
            len(order), device=order.device) - first_pos
        for r in range(int(occurrence.max()) + 1 if len(order) else 0):
            sel = occurrence == r
            rows = targets[sel]
            self.features[rows] = F.normalize(
                m * self.features[rows] + (1 - m) * feats[sel], dim=1)

    def _hard_update(self, feats: Tensor, targets: Tensor) -> None:
        """Batch-hard update: the least similar instance of each identity."""
        sims = (feats * self.features[targets]).sum(dim=1)
        rows = torch.unique(targets)
        # argmin of the similarity within each identity via a sort by
        # (identity, similarity): the first entry of each identity wins.
        key = torch.argsort(sims, stable=True)
        key = key[torch.argsort(targets[key], stable=True)]
        t_sorted = targets[key]
        first = torch.ones_like(t_sorted, dtype=torch.bool)
        first[1:] = t_sorted[1:] != t_sorted[:-1]
        hard = feats[key[first]]
        m = self.old_weight
        self.features[rows] = F.normalize(
            m * self.features[rows] + (1 - m) * hard, dim=1)

    def _mean_update(self, feats: Tensor, targets: Tensor) -> None:
        """Batch-mean update: the mean of each identity's batch instances."""
        rows, inverse = torch.unique(targets, return_inverse=True)
        sums = feats.new_zeros(len(rows), feats.shape[1]).index_add_(
            0, inverse, feats)
        counts = torch.bincount(inverse, minlength=len(rows)).to(feats.dtype)
        mean = sums / counts.unsqueeze(1)
        m = self.old_weight
        self.features[rows] = F.normalize(
            m * self.features[rows] + (1 - m) * mean, dim=1)
