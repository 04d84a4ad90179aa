# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster and camera-aware proxies of ICE (and CAP), frozen per epoch."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import CameraProxies, PseudoLabelResult
from mmreid_usl.utils.deprecation import renamed_kwargs
from ..utils.precision import at_least_fp32
from .base_memory import BaseMemory


@MODELS.register_module()
class CameraProxyMemory(BaseMemory):
    r"""Cluster proxies and per-(cluster, camera) proxies.

    Rebuilt from the momentum features after every clustering and kept frozen
    for the whole epoch (ICE, Chen et al., ICCV 2021, Eq. 4 and Eq. 6; the
    camera proxies come from CAP, Wang et al., AAAI 2021). Given the
    L2-normalised momentum features :math:`m_i`, pseudo-labels :math:`y_i`
    (-1 = outlier, ignored) and cameras :math:`c_i`:

    .. math::
        p_a = \frac{1}{|\{i: y_i=a\}|}\sum_{y_i=a} m_i, \qquad
        p_{ab} = \mathrm{normalize}\Big(\frac{1}{|\{i: y_i=a, c_i=b\}|}
                 \sum_{y_i=a, c_i=b} m_i\Big).

    The cluster proxies :math:`p_a` are NOT re-normalised (their norm is at
    most 1) as in the official code, unless ``normalize_centroids=True``.
    The camera proxies of all cameras are concatenated into one bank
    (ordered by camera, then cluster) with parallel ``proxy_labels``
    (cluster of each proxy) and ``proxy_cams`` (camera index of each proxy).

    The camera -> index map is explicit: ``camera_ids[k]`` is the raw camera id
    of index ``k`` (sorted), so the camera ids do not have to be 0..n-1 nor all
    present (official ICE indexes lists by raw camera id,
    ``docs/algorithms/ice.md#paper-vs-code``).

    The memory is frozen between re-clusterings (:meth:`update` is the
    no-op of :class:`BaseMemory`); all buffers are in the state dict and are
    resized on loading.

    Args:
        feat_dim (int): Feature dimension D.
        normalize_centroids (bool): L2-normalise the cluster proxies.
            Defaults to False (official code).
        encoder (str, optional): Encoder whose bank the proxies are built
            from; None = the clustered bank (ICE clusters the momentum
            features).
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 feat_dim: int,
                 normalize_centroids: bool = False,
                 encoder: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(encoder=encoder, init_cfg=init_cfg)
        self.feat_dim = feat_dim
        self.normalize_centroids = normalize_centroids
        self.register_buffer('centroids', torch.zeros(0, feat_dim))
        self.register_buffer('proxies', torch.zeros(0, feat_dim))
        self.register_buffer('proxy_labels', torch.zeros(0, dtype=torch.long))
        self.register_buffer('proxy_cams', torch.zeros(0, dtype=torch.long))
        self.register_buffer('camera_ids', torch.zeros(0, dtype=torch.long))

    #: The reset reads the rows (the per-(camera, cluster) means are
    #: computed from them).
    needs_bank_rows = True

    @property
    def num_clusters(self) -> int:
        """int: Number of cluster proxies C."""
        return self.centroids.shape[0]

    @property
    def num_proxies(self) -> int:
        """int: Number of camera proxies M."""
        return self.proxies.shape[0]

    @torch.no_grad()
    def reset(self, result: PseudoLabelResult) -> None:
        """Rebuild all proxies from a new clustering.

        Reads the L2-normalised feature bank (:attr:`encoder`), the
        labels, the camera ids and the number of clusters of ``result``.
        """
        if result.camids is None:
            raise ValueError('CameraProxyMemory needs result.camids.')
        self.build(
            F.normalize(at_least_fp32(self.bank(result)), dim=1),
            result.labels, result.camids, result.num_clusters)

    @torch.no_grad()
    def build(self,
              features: Tensor,
              labels: Tensor,
              camids: Tensor,
              num_clusters: Optional[int] = None) -> None:
        """Rebuild all proxies from one clustering.

        Args:
            features (Tensor): ``(N, D)`` L2-normalised momentum features
                (the proxies are float32, float64 for float64 features).
            labels (Tensor): ``(N,)`` pseudo-labels in ``0..C-1``, -1 for
                outliers (ignored).
            camids (Tensor): ``(N,)`` raw camera ids.
            num_clusters (int, optional): C; defaults to ``labels.max() + 1``.
        """
        device = self.centroids.device
        features = torch.as_tensor(features)
        features = at_least_fp32(features).to(device)
        dtype = features.dtype
        labels = torch.as_tensor(labels).to(device, torch.long)
        camids = torch.as_tensor(camids).to(device, torch.long)
        if not (features.shape[0] == labels.shape[0] == camids.shape[0]):
            raise ValueError('features, labels and camids must have the same '
                             f'length, got {features.shape[0]}, '
                             f'{labels.shape[0]}, {camids.shape[0]}')
        keep = labels >= 0
        feats, labels, camids = features[keep], labels[keep], camids[keep]
        if num_clusters is None:
            num_clusters = int(labels.max()) + 1 if labels.numel() else 0
        dim = features.shape[1]

        # Cluster proxies: mean of the members (scatter-add, then divide).
        counts = torch.zeros(
            num_clusters, device=device, dtype=dtype).index_add_(
                0, labels, torch.ones_like(labels, dtype=dtype))
        centroids = torch.zeros(
            num_clusters, dim, device=device, dtype=dtype).index_add_(
                0, labels, feats) / counts.clamp(min=1).unsqueeze(1)
        if self.normalize_centroids:
            centroids = F.normalize(centroids, dim=1)

        # Camera proxies: one per (camera, cluster) pair that occurs.
        camera_ids = torch.unique(camids)
        cam_index = torch.searchsorted(camera_ids, camids)
        key = cam_index * max(num_clusters, 1) + labels
        pair_keys, inverse = torch.unique(key, return_inverse=True)
        pair_counts = torch.zeros(
            len(pair_keys), device=device, dtype=dtype).index_add_(
                0, inverse, torch.ones_like(inverse, dtype=dtype))
        proxies = torch.zeros(
            len(pair_keys), dim, device=device, dtype=dtype).index_add_(
                0, inverse, feats) / pair_counts.unsqueeze(1)

        self.centroids = centroids
        self.proxies = F.normalize(proxies, dim=1)
        self.proxy_labels = pair_keys % max(num_clusters, 1)
        self.proxy_cams = pair_keys // max(num_clusters, 1)
        self.camera_ids = camera_ids

    def camera_proxies(self, camids: Tensor) -> CameraProxies:
        """The camera proxies, with the batch's cameras in their index.

        What a camera-aware loss takes (``CrossCameraProxyLoss``).

        Args:
            camids (Tensor): ``(B,)`` raw camera ids of the batch.
        """
        return CameraProxies(self.proxies, self.proxy_labels, self.proxy_cams,
                             self.camera_index(camids))

    def camera_index(self, camids: Tensor) -> Tensor:
        """Map raw camera ids to camera indices (-1 for unseen cameras).

        Args:
            camids (Tensor): ``(B,)`` raw camera ids.

        Returns:
            Tensor: ``(B,)`` long indices into ``camera_ids``.
        """
        camids = torch.as_tensor(camids, device=self.camera_ids.device)
        if self.camera_ids.numel() == 0:
            return torch.full_like(camids, -1, dtype=torch.long)
        idx = torch.searchsorted(self.camera_ids,
                                 camids).clamp(max=self.camera_ids.numel() - 1)
        return torch.where(self.camera_ids[idx] == camids, idx,
                           torch.full_like(idx, -1))
