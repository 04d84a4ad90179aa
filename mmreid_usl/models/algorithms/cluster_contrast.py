# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster Contrast (Dai et al., ACCV 2022)."""
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import ReIDDataSample
from .base import BaseUSLReID


@MODELS.register_module()
class ClusterContrast(BaseUSLReID):
    r"""Cluster Contrast for unsupervised person re-identification.

    Dai et al., "Cluster Contrast for Unsupervised Person
    Re-Identification", ACCV 2022 (arXiv:2103.11568); official code
    alibaba/cluster-contrast-reid. Spec: ``../shared/docs/algorithms.md`` §1.

    Each epoch the training set is clustered (DBSCAN on the k-reciprocal
    Jaccard distance) and the cluster memory rebuilt; each iteration the
    ClusterNCE loss

    .. math::
        L_q = -\log \frac{\exp(q \cdot M_{y} / \tau)}
                         {\sum_{c=1}^{C} \exp(q \cdot M_c / \tau)}

    is taken for the L2-normalised features :math:`q` of the batch, then the
    memory is updated (:class:`ClusterMemory`).

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder`.
        memory (dict | nn.Module): The :class:`ClusterMemory`.
        memory_init (str): How a cluster's memory row starts each epoch:
            ``'mean'`` (official code; the normalised cluster mean) or
            ``'random'`` (paper Eq. 1: the feature of one instance drawn
            uniformly from the cluster). Defaults to ``'mean'``.
        seed (int): Seed of the ``'random'`` draw; the draw also depends on
            how many clusterings happened, so every rank draws the same.
        data_preprocessor (dict | nn.Module, optional): See base.
        test_cfg (dict, optional): See base.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 memory: Union[dict, nn.Module],
                 memory_init: str = 'mean',
                 seed: int = 0,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(
            encoder=encoder,
            data_preprocessor=data_preprocessor,
            test_cfg=test_cfg,
            init_cfg=init_cfg)
        if memory_init not in ('mean', 'random'):
            raise ValueError("memory_init must be 'mean' or 'random', got "
                             f'{memory_init!r}')
        self.memory = MODELS.build(memory) if isinstance(memory,
                                                         dict) else memory
        self.memory_init = memory_init
        self.seed = seed
        self.register_buffer('num_clusterings', torch.zeros((),
                                                            dtype=torch.long))

    def set_pseudo_labels(self, result) -> None:
        """Store the labels and rebuild the cluster memory."""
        super().set_pseudo_labels(result)
        centroids = result.centroids
        if self.memory_init == 'random' and result.num_clusters > 0:
            centroids = self._random_instances(result.extras['features'],
                                               result.labels,
                                               result.num_clusters)
        self.memory.reset(centroids)
        self.num_clusterings += 1

    def _random_instances(self, feats: torch.Tensor, labels: torch.Tensor,
                          num_clusters: int) -> torch.Tensor:
        """One uniformly drawn member feature per cluster (paper Eq. 1)."""
        gen = torch.Generator().manual_seed(self.seed +
                                            int(self.num_clusterings))
        labels = labels.cpu()
        keys = torch.rand(len(labels), generator=gen)
        # order by (cluster, random key); the first member of each cluster
        # (the one with the smallest key) wins.
        order = torch.argsort(keys)
        order = order[labels[order] >= 0]
        order = order[torch.argsort(labels[order], stable=True)]
        first = torch.ones(len(order), dtype=torch.bool)
        first[1:] = labels[order][1:] != labels[order][:-1]
        winners = order[first]
        if len(winners) != num_clusters:
            raise RuntimeError('labels must be contiguous in [0, C)')
        return feats[winners.to(feats.device)]

    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """ClusterNCE on the batch, then the memory update.

        Returns:
            dict: ``loss`` (ClusterNCE).
        """
        targets = self.get_targets(data_samples)
        feats = F.normalize(self.encoder(inputs), dim=1)
        logits = self.memory(feats)
        loss = F.cross_entropy(logits, targets)
        self.memory.update(feats, targets)
        return dict(loss=loss)
