# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DCMIP's discrepant cluster proxies: M proxies per cluster."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils.deprecation import renamed_kwargs
from .base_memory import BaseMemory
from .cluster_memory import UPDATE_MODES, ClusterMemory


@MODELS.register_module()
class DiscrepantClusterMemory(BaseMemory):
    r"""M proxies per cluster, each kept by its own update rule.

    The discrepant cluster proxies (DCP) of DCMIP (Zou et al., "Discrepant
    and Multi-Instance Proxies for Unsupervised Person Re-Identification",
    ICCV 2023, https://openaccess.thecvf.com/content/ICCV2023/html/
    Zou_Discrepant_and_Multi-Instance_Proxies_for_Unsupervised_Person_Re-Identification_ICCV_2023_paper.html;
    no official code, unofficial re-implementation
    https://github.com/Trangle12/DCMIP). Facts and what is ours:
    ``docs/algorithms/dcmip.md``.

    Proxy type :math:`m = 1..M` is a :class:`ClusterMemory`
    :math:`P^m \in \mathbb{R}^{C \times D}`. At every re-clustering all
    :math:`M` start from the same L2-normalised cluster centroid (of the
    bank of ``encoder``, by default the student's). After the loss
    of every iteration each is updated from the same (all-gathered) batch of
    student features with its own rule (``update_modes``), the weight of the
    old entry being :math:`m` = ``old_weight``:

    - ``'hard'``: :math:`P_y \leftarrow \mathrm{norm}(m P_y + (1-m)
      x_{hard})` with the batch instance of cluster :math:`y` least similar
      to :math:`P_y` (Cluster Contrast's Eq. 2);
    - ``'mean'``: the same with the batch mean :math:`\bar x_y`;
    - ``'momentum'``: one such step per batch instance of :math:`y`, in
      batch order.

    Fed with different statistics of the same instances, the proxies drift
    apart; the loss (:class:`DiscrepantClusterNCELoss`) contrasts the query
    with every proxy type. Default ``('hard', 'mean')``: the branch the
    unofficial code's source labels ``#Market1501`` (commented out there);
    the branch it runs as committed, labelled ``#MSMT17``, is
    ``('momentum', 'mean')``. The paper does not give the rules.

    Args:
        feat_dim (int): Feature dimension D.
        update_modes (Sequence[str]): One :class:`ClusterMemory`
            ``update_mode`` per proxy type (``M = len(update_modes)``).
            Defaults to ``('hard', 'mean')``.
        old_weight (float): :math:`m`, weight of the OLD entry in every
            update. Defaults to 0.1 (the unofficial code).
        encoder (str, optional): Encoder whose bank the centroids are
            taken from. Defaults to ``'student'``.
        init_cfg (dict, optional): Initialisation config.
    """

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 feat_dim: int,
                 update_modes: Sequence[str] = ('hard', 'mean'),
                 old_weight: float = 0.1,
                 encoder: Optional[str] = 'student',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(encoder=encoder, init_cfg=init_cfg)
        if isinstance(update_modes, str) or len(update_modes) == 0:
            raise ValueError('update_modes must be a non-empty sequence of '
                             f'{UPDATE_MODES}, got {update_modes!r}')
        self.feat_dim = feat_dim
        self.update_modes = tuple(update_modes)
        self.proxies = nn.ModuleList([
            ClusterMemory(
                feat_dim,
                old_weight=old_weight,
                update_mode=mode,
                init_mode='mean',
                encoder=encoder) for mode in self.update_modes
        ])

    #: The reset reads the centroids alone (every proxy type starts from
    #: them), no bank row.
    needs_bank_rows = False

    @property
    def num_proxies(self) -> int:
        """int: ``M``, proxies per cluster."""
        return len(self.proxies)

    @property
    def num_clusters(self) -> int:
        """int: Number of clusters ``C``."""
        return self.proxies[0].num_clusters

    @property
    def features(self) -> Tensor:
        """Tensor: ``(M, C, D)`` L2-normalised proxies (a new tensor)."""
        return torch.stack([p.features for p in self.proxies])

    @property
    def nested_memories(self) -> List[BaseMemory]:
        """list[BaseMemory]: The per-type memories this one resets and
        updates (a model must not reset them a second time)."""
        return list(self.proxies)

    @torch.no_grad()
    def reset(self, result: PseudoLabelResult) -> None:
        """Every proxy type <- the L2-normalised centroids of the bank."""
        centroids = result.centroids_of(self.encoder)
        for proxy in self.proxies:
            proxy.set_proxies(centroids)
            proxy.num_resets += 1

    @torch.no_grad()
    def update(self,
               feats: Tensor,
               targets: Tensor,
               camids: Optional[Tensor] = None) -> None:
        """Apply every proxy type's rule to this iteration's batch.

        Each :meth:`ClusterMemory.update` all-gathers the batch, so every
        rank applies the same update. The arguments of
        :meth:`BaseMemory.update`, passed on to every proxy type.
        """
        for proxy in self.proxies:
            proxy.update(feats, targets, camids)
