# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The typed result of one (pseudo-)labelling of the training set."""
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Union

import numpy as np
import torch

from mmreid_usl.utils.deprecation import renamed_attribute, renamed_kwargs

ArrayLike = Union[np.ndarray, torch.Tensor, list]

#: Where the labels of a result come from: a clustering, the true ids, or
#: the true ids with deliberate noise (``OracleClusterer``).
LABELS_FROM = ('pseudo', 'gt', 'oracle')
#: Deprecated name of :data:`LABELS_FROM`.
LABEL_SOURCES = LABELS_FROM


def relabel_contiguous(labels: ArrayLike) -> np.ndarray:
    """Map labels to ``0..C-1`` by sorted old label, keeping -1 (outlier).

    Any negative label is treated as an outlier.

    Args:
        labels (array-like): Integer labels ``(N,)``.

    Returns:
        np.ndarray: int64 labels ``(N,)``, clusters numbered ``0..C-1``.
    """
    labels = np.asarray(
        labels.cpu() if isinstance(labels, torch.Tensor) else labels,
        dtype=np.int64).reshape(-1)
    out = np.full(labels.shape, -1, dtype=np.int64)
    valid = labels >= 0
    if valid.any():
        _, out[valid] = np.unique(labels[valid], return_inverse=True)
    return out


def cluster_means(feats: torch.Tensor, labels: torch.Tensor,
                  num_clusters: int) -> torch.Tensor:
    r"""Mean feature of every cluster, :math:`c_j = \frac{1}{|C_j|}
    \sum_{i \in C_j} f_i` (one ``index_add_``, no loop over clusters).

    Args:
        feats (Tensor): ``(N, D)`` features.
        labels (Tensor): ``(N,)`` labels in ``0..C-1``, -1 ignored.
        num_clusters (int): ``C`` (may be 0).

    Returns:
        Tensor: ``(C, D)`` means (not normalised), on ``feats.device``.
    """
    labels = labels.to(feats.device)
    valid = labels >= 0
    feats = feats.detach()
    sums = feats.new_zeros((num_clusters, feats.shape[1]))
    sums.index_add_(0, labels[valid], feats[valid])
    counts = torch.bincount(labels[valid], minlength=num_clusters)
    return sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)


@dataclass
class PseudoLabelResult:
    """The labels of the training set for one epoch and what they came from.

    Built by :meth:`PseudoLabeler.build_result` on every rank from the
    labels that rank 0 computed and broadcast, handed by the
    ``PseudoLabelHook`` to ``model.set_pseudo_labels`` and to the sampler.
    Every consumer reads fields, never string keys; it is identical on every
    rank. It holds what the model consumes, not the labeller's inputs (the
    reference bank of domain adaptation stays in the labelling context).

    Attributes:
        labels (torch.LongTensor): ``(N,)`` labels ``0..C-1`` in dataset
            order, -1 for outliers.
        num_clusters (int): ``C``.
        num_outliers (int): Number of -1 labels.
        centroids (torch.Tensor): ``(C, D)`` mean (not normalised) of the
            clustered feature bank ``features[cluster_encoder]`` per cluster;
            ``(0, D)`` when there is no cluster.
        features (dict[str, Tensor]): The L2-normalised ``(N, D)`` feature
            banks of the training set by encoder name (``'student'``,
            ``'momentum'``), in dataset order.
        cluster_encoder (str): The encoder whose bank was clustered.
        camids (torch.LongTensor, optional): ``(N,)`` camera ids.
        epoch (int): The epoch the labels were made at (before it trains).
        labels_from (str): ``'pseudo'`` (clustering), ``'gt'`` (the
            dataset's true ids: supervised training / upper bound) or
            ``'oracle'`` (true ids with merge/split noise, a study).

    ``feat_source`` and ``label_source`` are the deprecated names of
    ``cluster_encoder`` and ``labels_from`` (as arguments and attributes; a
    ``DeprecatedNameWarning``).
    """
    labels: torch.Tensor
    num_clusters: int
    num_outliers: int
    centroids: torch.Tensor
    features: Dict[str, torch.Tensor] = field(default_factory=dict)
    cluster_encoder: str = 'student'
    camids: Optional[torch.Tensor] = None
    epoch: int = 0
    labels_from: str = 'pseudo'

    feat_source = renamed_attribute('feat_source', 'cluster_encoder')
    label_source = renamed_attribute('label_source', 'labels_from')

    def __post_init__(self) -> None:
        if self.labels_from not in LABELS_FROM:
            raise ValueError(f'labels_from must be one of {LABELS_FROM}, '
                             f'got {self.labels_from!r}')

    @classmethod
    @renamed_kwargs(feat_source='cluster_encoder', label_source='labels_from')
    def from_labels(cls,
                    labels: ArrayLike,
                    features: Union[torch.Tensor, Dict[str, torch.Tensor]],
                    cluster_encoder: Optional[str] = None,
                    centroid_device: Optional[Union[str,
                                                    torch.device]] = None,
                    **kwargs) -> 'PseudoLabelResult':
        """Build from raw labels (relabelled contiguously) and features.

        Args:
            labels (array-like): ``(N,)`` labels, negative = outlier.
            features (Tensor | dict[str, Tensor]): The feature bank that was
                clustered, or all banks by name.
            cluster_encoder (str, optional): Name of the clustered bank;
                required when ``features`` is a dict with several banks. A
                single tensor is stored as ``'student'`` unless named.
            centroid_device (str | torch.device, optional): Where the
                centroids :math:`c_j = \\frac{1}{|C_j|}\\sum_{i \\in C_j} f_i`
                are summed (then moved to the bank's device); ``'cpu'``
                gives bit-identical centroids on every rank. Defaults to
                the bank's device.
            **kwargs: Other fields (``camids``, ``epoch``, ``labels_from``).
        """
        if isinstance(features, torch.Tensor):
            cluster_encoder = cluster_encoder or 'student'
            features = {cluster_encoder: features}
        features = dict(features)
        if cluster_encoder is None:
            if len(features) != 1:
                raise ValueError('cluster_encoder must name the clustered '
                                 f'bank among {sorted(features)}')
            cluster_encoder = next(iter(features))
        if cluster_encoder not in features:
            raise KeyError(f'cluster_encoder {cluster_encoder!r} is not '
                           f'among the feature banks {sorted(features)}')
        feats = features[cluster_encoder]
        lab = torch.from_numpy(relabel_contiguous(labels)).to(feats.device)
        if len(lab) != len(feats):
            raise ValueError(f'{len(lab)} labels for {len(feats)} features')
        valid = lab >= 0
        num_clusters = int(lab.max()) + 1 if bool(valid.any()) else 0
        if centroid_device is None:
            centroids = cluster_means(feats, lab, num_clusters)
        else:
            centroids = cluster_means(
                feats.detach().to(centroid_device), lab,
                num_clusters).to(feats.device)
        return cls(
            labels=lab,
            num_clusters=num_clusters,
            num_outliers=int((~valid).sum()),
            centroids=centroids,
            features=features,
            cluster_encoder=cluster_encoder,
            **kwargs)

    @property
    def num_samples(self) -> int:
        """int: ``N``, the size of the training set."""
        return int(self.labels.numel())

    @renamed_kwargs(source='encoder')
    def bank(self, encoder: Optional[str] = None) -> torch.Tensor:
        """The ``(N, D)`` feature bank of ``encoder`` (default: the
        clustered one).

        Raises:
            KeyError: Naming the banks that exist, if ``encoder`` is absent
                (the model's ``pseudo_label_banks`` must list it).
        """
        encoder = encoder or self.cluster_encoder
        if encoder not in self.features:
            raise KeyError(
                f'PseudoLabelResult has no {encoder!r} feature bank (it has '
                f'{sorted(self.features)}); add it to the model\'s '
                'pseudo_label_banks so the PseudoLabelHook extracts it.')
        return self.features[encoder]

    @renamed_kwargs(source='encoder')
    def centroids_of(self, encoder: Optional[str] = None) -> torch.Tensor:
        """``(C, D)`` cluster means of the bank of ``encoder`` (not
        normalised)."""
        encoder = encoder or self.cluster_encoder
        if encoder == self.cluster_encoder:
            return self.centroids
        return cluster_means(self.bank(encoder), self.labels,
                             self.num_clusters)

    def to(self, device: Union[str, torch.device]) -> 'PseudoLabelResult':
        """A copy with every tensor on ``device``."""

        def move(x):
            return x.to(device) if isinstance(x, torch.Tensor) else x

        return replace(
            self,
            labels=move(self.labels),
            centroids=move(self.centroids),
            features={k: move(v)
                      for k, v in self.features.items()},
            camids=move(self.camids))


#: The deprecated field names are accepted by the constructor too.
PseudoLabelResult.__init__ = renamed_kwargs(  # type: ignore[method-assign]
    feat_source='cluster_encoder',
    label_source='labels_from')(PseudoLabelResult.__init__)
