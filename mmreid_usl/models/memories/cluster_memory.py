# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster-level memory of Cluster Contrast."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.dist import all_gather_cat
from ..utils.resizable_buffers import resize_buffers_for_loading


@MODELS.register_module()
class ClusterMemory(BaseModule):
    r"""One L2-normalised feature vector per pseudo-identity (cluster).

    Cluster Contrast (Dai et al., "Cluster Contrast for Unsupervised Person
    Re-Identification", ACCV 2022), ``../shared/docs/algorithms.md`` §1.2-1.3.

    Logits against the memory :math:`M \in \mathbb{R}^{C \times D}` are
    :math:`q M^\top / \tau` (ClusterNCE, Eq. 3, :math:`\tau=0.05` in the
    official code). The memory is updated with the batch features after the
    logits were taken, with :math:`m` the weight of the OLD entry
    (``momentum`` in the official ``cm.py``):

    - ``update_mode='momentum'`` (official default since 11/2021): for each
      sample :math:`(x, y)` in batch order,
      :math:`M_y \leftarrow \mathrm{norm}(m M_y + (1 - m) x)`.
    - ``update_mode='hard'`` (the paper's Eq. 2, ``--use-hard``): for each
      identity :math:`y` in the batch,
      :math:`x_{hard} = \arg\min_{x: label(x)=y} x \cdot M_y` and
      :math:`M_y \leftarrow \mathrm{norm}(m M_y + (1 - m) x_{hard})`.

    Logits are taken against a detached snapshot of the memory, so updating
    it right after (under ``no_grad``) gives exactly the gradient of the
    official autograd function, whose backward uses the memory before its
    in-place update. Features and targets are all-gathered across ranks
    first, so every rank applies the identical update (the official code ran
    DataParallel with a single memory). All memory maths runs in fp32.

    Args:
        feat_dim (int): Feature dimension.
        temperature (float): :math:`\tau`. Defaults to 0.05.
        momentum (float): :math:`m`, weight of the OLD entry. Defaults to
            0.2 (the official argparse default; its README commands use 0.1).
        update_mode (str): ``'momentum'`` or ``'hard'``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 feat_dim: int,
                 temperature: float = 0.05,
                 momentum: float = 0.2,
                 update_mode: str = 'momentum',
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if update_mode not in ('momentum', 'hard'):
            raise ValueError("update_mode must be 'momentum' or 'hard', got "
                             f'{update_mode!r}')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        self.feat_dim = feat_dim
        self.temperature = temperature
        self.momentum = momentum
        self.update_mode = update_mode
        self.register_buffer('features', torch.zeros(0, feat_dim))

    @property
    def num_clusters(self) -> int:
        """int: Number of rows (clusters) in the memory."""
        return self.features.shape[0]

    @torch.no_grad()
    def reset(self, centroids: torch.Tensor) -> None:
        """Rebuild the memory from cluster centroids (code: normalised mean).

        Args:
            centroids (Tensor): ``(C, D)`` cluster centres; L2-normalised
                here. ``C`` may be 0.
        """
        if centroids.dim() != 2 or centroids.shape[1] != self.feat_dim:
            raise ValueError(f'centroids must be (C, {self.feat_dim}), got '
                             f'{tuple(centroids.shape)}')
        self.features = F.normalize(
            centroids.float(), dim=1).to(self.features.device)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits of L2-normalised features against the memory.

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features.

        Returns:
            Tensor: ``(B, C)`` fp32 logits ``feats @ M.T / temperature``.
        """
        if self.num_clusters == 0:
            raise RuntimeError(
                'ClusterMemory is empty: set_pseudo_labels() has not been '
                'called or the clustering produced zero clusters.')
        with torch.autocast(device_type=feats.device.type, enabled=False):
            snapshot = self.features.detach().clone()
            return feats.float().mm(snapshot.t()) / self.temperature

    @torch.no_grad()
    def update(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
        """Update the memory with this iteration's features (all ranks).

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features of this rank.
            targets (Tensor): ``(B, )`` cluster indices of this rank.
        """
        feats = all_gather_cat(feats.detach().float().contiguous())
        targets = all_gather_cat(targets.contiguous())
        with torch.autocast(device_type=feats.device.type, enabled=False):
            if self.update_mode == 'momentum':
                self._momentum_update(feats, targets)
            else:
                self._hard_update(feats, targets)

    def _momentum_update(self, feats: torch.Tensor,
                         targets: torch.Tensor) -> None:
        """Sequential per-sample update, vectorised over identities.

        Samples of different identities touch different rows, so only the
        order within an identity matters: step ``r`` applies the ``r``-th
        occurrence of every identity at once, which equals the official
        one-sample-at-a-time loop.
        """
        m = self.momentum
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

    def _hard_update(self, feats: torch.Tensor, targets: torch.Tensor) -> None:
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
        m = self.momentum
        self.features[rows] = F.normalize(
            m * self.features[rows] + (1 - m) * hard, dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        resize_buffers_for_loading(self, state_dict, prefix, ['features'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
