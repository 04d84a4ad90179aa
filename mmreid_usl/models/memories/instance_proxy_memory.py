# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DCMIP's multi-instance proxies: K instance features per cluster."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils.dist import all_gather_cat
from mmreid_usl.utils.validation import check_positive_int
from mmreid_usl.utils.deprecation import renamed_kwargs
from ..utils.precision import at_least_fp32
from .base_memory import BaseMemory


@MODELS.register_module()
class InstanceProxyMemory(BaseMemory):
    r"""K instance proxies per cluster, replaced by the newest batch.

    The multi-instance proxies (MIP) of DCMIP (Zou et al., "Discrepant and
    Multi-Instance Proxies for Unsupervised Person Re-Identification",
    ICCV 2023; unofficial code https://github.com/Trangle12/DCMIP), see
    ``docs/algorithms/dcmip.md``. The memory
    :math:`I \in \mathbb{R}^{C \times K \times D}` holds ``num_instances``
    (:math:`K = 16`, the paper's value) L2-normalised instance features per
    cluster:

    - :meth:`reset` (every re-clustering): the :math:`K` slots of cluster
      :math:`c` take the features (bank of ``encoder``, the momentum
      encoder's by default) of :math:`K` members of :math:`c` drawn
      uniformly WITH replacement. The generator is seeded with ``seed +
      result.epoch``, so every rank (and a resumed run) draws the same.
    - :meth:`update` (every iteration, "replacement update"): for every
      cluster :math:`y` of the all-gathered batch with instances
      :math:`x_0..x_{n-1}` (in batch order), slot :math:`k` becomes
      :math:`x_{k \bmod n}` for :math:`k < K` (cyclic fill: the first
      :math:`K` instances if :math:`n \ge K`, every instance repeated as
      evenly as possible if :math:`n < K`). The P x K sampler gives
      :math:`n = K` (the batch replaces the cluster's proxies exactly). The
      unofficial code writes a random permutation (with replacement when
      :math:`n < K`); the losses only see the set of slots, so for
      :math:`n = K` both are the same memory. Deterministic, hence identical
      on every rank.

    Args:
        feat_dim (int): Feature dimension D.
        num_instances (int): :math:`K`. Defaults to 16.
        encoder (str, optional): Encoder whose bank fills the proxies
            at :meth:`reset`. Defaults to ``'momentum'`` (the paper; the
            ablation without a momentum encoder uses ``'student'``).
        seed (int): Base seed of the member draw. Defaults to 0.
        init_cfg (dict, optional): Initialisation config.
    """

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 feat_dim: int,
                 num_instances: int = 16,
                 encoder: Optional[str] = 'momentum',
                 seed: int = 0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(encoder=encoder, init_cfg=init_cfg)
        check_positive_int('num_instances', num_instances)
        self.feat_dim = feat_dim
        self.num_instances = num_instances
        self.seed = seed
        self.register_buffer('features',
                             torch.zeros(0, num_instances, feat_dim))

    #: The reset draws member rows of the bank.
    needs_bank_rows = True

    @property
    def num_clusters(self) -> int:
        """int: Number of clusters ``C`` (0 when empty)."""
        return self.features.shape[0]

    @torch.no_grad()
    def clear(self) -> None:
        """Empty the memory (e.g. before the instance proxies start)."""
        self.features = self.features.new_zeros(0, self.num_instances,
                                                self.feat_dim)

    @torch.no_grad()
    def reset(self, result: PseudoLabelResult) -> None:
        """Fill every cluster's slots with K members drawn with replacement.

        Args:
            result (PseudoLabelResult): The labelling; its bank
                ``encoder`` gives the features.
        """
        feats = self.bank(result)
        if feats.dim() != 2 or feats.shape[1] != self.feat_dim:
            raise ValueError(f'the {self.encoder!r} bank must be (N, '
                             f'{self.feat_dim}), got {tuple(feats.shape)}')
        index = self.draw_members(result.labels, result.num_clusters,
                                  self.num_instances,
                                  self.seed + int(result.epoch))
        self.features = F.normalize(
            at_least_fp32(feats[index.to(feats.device)]),
            dim=2).to(self.features.device)

    @staticmethod
    def draw_members(labels: Tensor, num_clusters: int, num_draws: int,
                     seed: int) -> Tensor:
        """``(C, num_draws)`` sample indices, uniform with replacement.

        Row ``c`` holds members of cluster ``c`` only (labels ``-1`` are
        never drawn). Drawn on CPU with a generator seeded by ``seed``.

        Raises:
            ValueError: If a cluster in ``0..num_clusters-1`` has no member.
        """
        labels = labels.detach().cpu().long()
        counts = torch.bincount(
            labels[labels >= 0], minlength=num_clusters)[:num_clusters]
        if bool((counts == 0).any()):
            empty = torch.nonzero(counts == 0).flatten()[:5].tolist()
            raise ValueError(f'clusters {empty} have no member: labels must '
                             f'be contiguous in [0, {num_clusters})')
        # members sorted by cluster (stable: dataset order within a cluster)
        order = torch.argsort(labels, stable=True)
        order = order[labels[order] >= 0]
        starts = torch.cumsum(counts, 0) - counts
        gen = torch.Generator().manual_seed(int(seed))
        u = torch.rand(num_clusters, num_draws, generator=gen,
                       dtype=torch.float64)
        # floor(u * n) is uniform on 0..n-1 (min() guards u * n rounding
        # up to n)
        offset = torch.minimum((u * counts.unsqueeze(1)).long(),
                               counts.unsqueeze(1) - 1)
        return order[starts.unsqueeze(1) + offset]

    @torch.no_grad()
    def update(self,
               feats: Tensor,
               targets: Tensor,
               camids: Optional[Tensor] = None) -> None:
        """Replace the slots of the batch's clusters by its instances.

        The arguments of :meth:`BaseMemory.update` (``feats``: the momentum
        encoder's; ``camids`` unused).
        """
        if self.num_clusters == 0:
            raise RuntimeError('InstanceProxyMemory is empty: reset() was not '
                               'called (or found no cluster).')
        feats = all_gather_cat(at_least_fp32(feats.detach()).contiguous())
        targets = all_gather_cat(targets.contiguous())
        rows, inverse, counts = torch.unique(
            targets, return_inverse=True, return_counts=True)
        # instances grouped by cluster, batch order within a cluster;
        # cluster j occupies order[starts[j]:starts[j] + counts[j]]
        order = torch.argsort(inverse, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        # slot k of cluster j <- its (k mod n_j)-th instance
        k = torch.arange(self.num_instances, device=feats.device)
        src = starts.unsqueeze(1) + k.unsqueeze(0) % counts.unsqueeze(1)
        self.features[rows] = F.normalize(
            feats[order[src]], dim=2).to(self.features.dtype)
