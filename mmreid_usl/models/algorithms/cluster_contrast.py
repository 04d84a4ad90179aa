# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster Contrast (Dai et al., ACCV 2022)."""
from typing import Dict, List, Union

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
    Re-Identification", ACCV 2022 (https://arxiv.org/abs/2103.11568);
    official code https://github.com/alibaba/cluster-contrast-reid. Facts
    and paper-vs-code differences: ``docs/algorithms/cluster_contrast.md``.

    Each epoch the training set is clustered (DBSCAN on the k-reciprocal
    Jaccard distance) and the cluster memory rebuilt
    (:class:`ClusterMemory`); each iteration the ClusterNCE loss
    (:class:`ClusterNCELoss`)

    .. math::
        \mathcal{L}_q = -\log \frac{\exp(q \cdot M_{y} / \tau)}
                         {\sum_{c=1}^{C} \exp(q \cdot M_c / \tau)}

    is taken for the L2-normalised features :math:`q` of the batch, then the
    memory is updated with them.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder`.
        memory (dict | nn.Module): The :class:`ClusterMemory` (``feat_dim``
            defaults to the encoder's).
        loss_cluster (dict | nn.Module): The :class:`ClusterNCELoss`.
        **kwargs: ``labels_from``, ``cluster_encoder``,
            ``bn_group_size``, ``data_preprocessor``, ``test_cfg``,
            ``init_cfg`` of :class:`BaseUSLReID`.
    """

    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 memory: Union[dict, nn.Module] = dict(type='ClusterMemory'),
                 loss_cluster: Union[dict, nn.Module] = dict(
                     type='ClusterNCELoss', temperature=0.05),
                 **kwargs):
        super().__init__(encoder=encoder, **kwargs)
        self.memory = self._build_memory(memory)
        self.loss_cluster = self._build_component('loss_cluster',
                                                  loss_cluster)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """ClusterNCE on the batch, then the memory update.

        Returns:
            dict: ``loss_cluster``.
        """
        targets = self.get_targets(data_samples)
        feats = F.normalize(self.student_forward(inputs), dim=1)
        loss = self.loss_cluster(feats, self.memory.features, targets)
        self.memory.update(feats, targets, self.get_camids(data_samples))
        return dict(loss_cluster=loss)
