# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The typed result of one (pseudo-)labelling of the training set."""
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional, Tuple, Union

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


#: Bits of each of the two limbs of the fixed-point centroid sums: a limb
#: is an integer below ``2^26`` in magnitude, so float64 sums of fewer than
#: ``2^27`` of them are exact.
_LIMB_BITS = 26
#: Elements of a ``(rows, columns)`` slice of the bank converted at a time.
_CHUNK_ELEMS = 1 << 18

#: ``reduce(tensor, op)`` with ``op`` ``'sum'`` or ``'max'``: combines a
#: partial result with those of the processes holding the other rows (an
#: all-reduce); the identity for one process holding every row.
Reduce = Callable[[torch.Tensor, str], torch.Tensor]


def _no_reduce(t: torch.Tensor, op: str) -> torch.Tensor:
    return t


def _limbs(x: torch.Tensor,
           exponent: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``x`` on the grid of step ``2^(exponent - 52)`` as two integer-valued
    float64 limbs ``hi + lo 2^-26`` (units of ``2^(exponent - 26)``), the
    bits below the grid dropped. Exact arithmetic: float -> float64, a
    power-of-two scale and truncations (``|x| < 2^exponent``, so ``|hi|,
    |lo| < 2^26``)."""
    y = x.double().mul_(2.0**(_LIMB_BITS - exponent))
    hi = torch.trunc(y)
    lo = y.sub_(hi).mul_(2.0**_LIMB_BITS).trunc_()
    return hi, lo


def cluster_means(feats: torch.Tensor,
                  labels: torch.Tensor,
                  num_clusters: int,
                  reduce: Optional[Reduce] = None) -> torch.Tensor:
    r"""Mean feature of every cluster, :math:`c_j = \frac{1}{|C_j|}
    \sum_{i \in C_j} f_i`, the same bits however the rows are split.

    A float32 (or lower) bank is summed exactly: every value is put on the
    fixed-point grid of step :math:`2^{b-52}` (:math:`2^b` bounds the
    largest :math:`|f|` of the bank; the bits below the grid, less than
    :math:`2^{-51}` of that largest value, are dropped) as two limbs of 26
    bits, whose float64 sums are exact integers (clusters of fewer than
    :math:`2^{27}` members) and so do not depend on the order of the rows.
    The means are therefore the same bits in one process and when
    ``reduce`` sums the partial sums of row blocks held by several
    processes (:func:`~mmreid_usl.clustering.sharded.sharded_cluster_means`
    in a sharded labelling), on any device (every step is exact or
    correctly rounded IEEE arithmetic); each mean is then formed in
    float64 (the limbs' sum, then the division: two roundings, the same on
    every device and split) and rounded to the bank's dtype. A float64
    bank (the parity checks) and a bank with a non-finite value are summed
    in float64 by ``index_add_`` (the order of the row blocks then shows
    in the last bits).

    Args:
        feats (Tensor): ``(n, D)`` features (all N rows, or this process's
            rows when ``reduce`` combines processes).
        labels (Tensor): ``(n,)`` labels in ``0..C-1`` of those rows, -1
            ignored.
        num_clusters (int): ``C`` (may be 0).
        reduce (Callable, optional): ``reduce(tensor, op)``, ``op`` in
            ``('sum', 'max')``: the all-reduce of a partial result over the
            processes holding the other rows; every process must call this
            function with the same ``num_clusters``. None: these are all
            the rows.

    Returns:
        Tensor: ``(C, D)`` means (not normalised), on ``feats.device`` in
        ``feats.dtype``.
    """
    reduce = reduce or _no_reduce
    feats = feats.detach()
    labels = labels.to(feats.device)
    dim = feats.shape[1]
    out = feats.new_zeros((num_clusters, dim))
    if num_clusters == 0:
        return out
    valid = labels >= 0
    counts = reduce(
        torch.bincount(labels[valid], minlength=num_clusters), 'sum')
    denom = counts.clamp(min=1).unsqueeze(1).double()
    if feats.numel():
        low, high = torch.aminmax(feats)
        peak = torch.maximum(-low, high).double().reshape(1)
    else:
        peak = torch.zeros(1, dtype=torch.float64, device=feats.device)
    peak = reduce(peak, 'max')
    if feats.dtype == torch.float64 or not bool(torch.isfinite(peak)):
        sums = torch.zeros((num_clusters, dim), dtype=torch.float64,
                           device=feats.device)
        sums.index_add_(0, labels[valid], feats[valid].double())
        return (reduce(sums, 'sum') / denom).to(feats.dtype)
    exponent = int(torch.frexp(peak.cpu()).exponent)
    # outliers go to a spare row C, dropped after (no masked copy)
    target = torch.where(valid, labels, num_clusters)
    cols = max(1, min(dim, (1 << 22) // num_clusters))
    rows = max(1, _CHUNK_ELEMS // cols)
    unit_hi = 2.0**(exponent - _LIMB_BITS)
    unit_lo = 2.0**(exponent - 2 * _LIMB_BITS)
    for c0 in range(0, dim, cols):
        c1 = min(dim, c0 + cols)
        hi = torch.zeros((num_clusters + 1, c1 - c0), dtype=torch.float64,
                         device=feats.device)
        lo = torch.zeros_like(hi)
        for r0 in range(0, feats.shape[0], rows):
            h, lw = _limbs(feats[r0:r0 + rows, c0:c1], exponent)
            hi.index_add_(0, target[r0:r0 + rows], h)
            lo.index_add_(0, target[r0:r0 + rows], lw)
        hi = reduce(hi[:num_clusters], 'sum')
        lo = reduce(lo[:num_clusters], 'sum')
        mean = (hi * unit_hi + lo * unit_lo) / denom
        out[:, c0:c1] = mean.to(out.dtype)
    return out


@dataclass
class PseudoLabelResult:
    """The labels of the training set for one epoch and what they came from.

    Built by :meth:`PseudoLabeler.build_result` on every rank from the
    labels that rank 0 computed and broadcast, handed by the
    ``PseudoLabelHook`` to ``model.set_pseudo_labels`` and to the sampler.
    Every consumer reads fields, never string keys; it is identical on every
    rank. It holds what the model consumes, not the labeller's inputs (the
    reference bank of domain adaptation stays in the labelling context).

    **Without rows** (``banks_gathered=False``): when several ranks label
    together from their row blocks and the model declares that it reads no
    bank row (``needs_bank_rows`` False), the ``PseudoLabelHook`` never
    gathers the ``(N, D)`` banks
    (:meth:`PseudoLabeler.build_result_of_blocks`). Such a result has no
    :attr:`features`; :attr:`bank_centroids` holds the centroids of every
    bank the model reads, summed per rank and all-reduced, with the same
    bits as from the full banks (:func:`cluster_means`). :meth:`bank` then
    raises, and :meth:`centroids_of` answers from :attr:`bank_centroids`.

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
        bank_centroids (dict[str, Tensor]): ``(C, D)`` centroids by encoder
            name, of every bank the model reads, in a result without rows
            (the clustered one is :attr:`centroids` too); empty otherwise.
        banks_gathered (bool): Whether :attr:`features` holds the ``(N,
            D)`` banks. False: see *Without rows* above.

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
    bank_centroids: Dict[str, torch.Tensor] = field(default_factory=dict)
    banks_gathered: bool = True

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

    def has_bank(self, encoder: str) -> bool:
        """Whether the bank of ``encoder`` was extracted: its rows are in
        :attr:`features`, or its centroids in :attr:`bank_centroids`."""
        return encoder in self.features or encoder in self.bank_centroids

    @renamed_kwargs(source='encoder')
    def bank(self, encoder: Optional[str] = None) -> torch.Tensor:
        """The ``(N, D)`` feature bank of ``encoder`` (default: the
        clustered one).

        Raises:
            RuntimeError: If the banks were not gathered
                (``banks_gathered=False``): the model declared it reads no
                row.
            KeyError: Naming the banks that exist, if ``encoder`` is absent
                (the model's ``pseudo_label_banks`` must list it).
        """
        encoder = encoder or self.cluster_encoder
        if not self.banks_gathered:
            raise RuntimeError(
                f'PseudoLabelResult has no rows of the {encoder!r} bank: the '
                'ranks labelled from their row blocks without gathering the '
                '(N, D) banks, because the model declared '
                'needs_bank_rows=False; only the labels, camera ids and '
                'centroids (centroids_of) are available. A memory that '
                'reads bank rows must declare needs_bank_rows = True (the '
                "BaseMemory default), or set the PseudoLabelHook's "
                'gather_banks=True.')
        if encoder not in self.features:
            raise KeyError(
                f'PseudoLabelResult has no {encoder!r} feature bank (it has '
                f'{sorted(self.features)}); add it to the model\'s '
                'pseudo_label_banks so the PseudoLabelHook extracts it.')
        return self.features[encoder]

    @renamed_kwargs(source='encoder')
    def centroids_of(self, encoder: Optional[str] = None) -> torch.Tensor:
        """``(C, D)`` cluster means of the bank of ``encoder`` (not
        normalised): :attr:`centroids`, :attr:`bank_centroids`, or computed
        from the bank's rows."""
        encoder = encoder or self.cluster_encoder
        if encoder == self.cluster_encoder:
            return self.centroids
        if encoder in self.bank_centroids:
            return self.bank_centroids[encoder]
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
            bank_centroids={k: move(v)
                            for k, v in self.bank_centroids.items()},
            camids=move(self.camids))


#: The deprecated field names are accepted by the constructor too.
PseudoLabelResult.__init__ = renamed_kwargs(  # type: ignore[method-assign]
    feat_source='cluster_encoder',
    label_source='labels_from')(PseudoLabelResult.__init__)
