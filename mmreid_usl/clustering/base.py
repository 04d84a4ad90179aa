# Copyright (c) mmreid_usl contributors. All rights reserved.
r"""The labelling protocol: what distances and clusterers receive and return.

One labelling of the training set is

.. math::
    D = \text{distance}(F, \text{ctx}, r), \qquad
    y = \text{clusterer}(D, \text{ctx}),

where :math:`F` is the ``(N, D)`` L2-normalised bank that is clustered,
``ctx`` a :class:`LabelingContext` (camera ids, the reference bank, true
ids, the epoch, ...), :math:`r` the pruning radius that the
:class:`PseudoLabeler` takes from the clusterer
(:meth:`BaseClusterer.pruning_radius`) and :math:`D` a
:class:`DistanceMatrix`. Everything a distance or clusterer may need is a
field of the context; everything a distance tells the clusterer is a field
of the matrix. Nothing is found by introspection, attached to a scipy
matrix, or set on a component by another one.

Example: a distance that adds a penalty to the pairs of one camera (the
shape of camera-aware Jaccard variants)::

    from mmreid_usl.clustering import (BaseDistance, DistanceMatrix,
                                       JaccardDistance)
    from mmreid_usl.registry import TASK_UTILS

    @TASK_UTILS.register_module()
    class SameCameraPenalty(BaseDistance):

        def __init__(self, penalty=0.1, **jaccard):
            self.penalty = penalty
            self.jaccard = JaccardDistance(**jaccard)

        def compute(self, features, context, max_distance):
            # the penalty only raises values: the pairs below
            # max_distance are among those of the inner distance
            d = self.jaccard(features, context, max_distance).matrix
            cam = context.camids.cpu().numpy()
            rows = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
            same = (cam[rows] == cam[d.indices]) & (rows != d.indices)
            d.data[same] += self.penalty
            return DistanceMatrix(d, max_distance=max_distance)

and in a config
``labeler=dict(distance=dict(type='SameCameraPenalty', k1=30, k2=6))``.
"""
import math
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp
import torch

from .unstored_distance import UnstoredDistance

#: What a clusterer accepts as a precomputed distance besides a
#: :class:`DistanceMatrix` (wrapped by :func:`as_distance_matrix`).
RawDistance = Union[sp.spmatrix, np.ndarray, torch.Tensor]


@dataclass
class LabelingContext:
    """Everything about the training set a distance or clusterer may read.

    Built by the :class:`PseudoLabeler` (from the arguments of its call, or
    by the ``PseudoLabelHook``); every per-sample field is in the order of
    :attr:`features`. A component reads the fields it needs and ignores the
    others, so adding a field breaks no component.

    Attributes:
        features (Tensor, optional): ``(N, D)`` the L2-normalised bank that
            is clustered (a clusterer without a distance, e.g. k-means,
            works on it).
        raw_features (Tensor, optional): ``(N, D)`` the same bank
            unnormalised; given when the distance declares
            :attr:`BaseDistance.needs_raw_features`.
        camids (Tensor, optional): ``(N,)`` camera ids.
        true_ids (np.ndarray, optional): ``(N,)`` true identities, for the
            oracle (:attr:`BaseClusterer.needs_true_ids`) and diagnostics;
            never for a real clustering.
        reference_features (Tensor, optional): ``(M, D)`` L2-normalised bank
            of a reference set (domain adaptation: the labelled source
            domain).
        raw_reference_features (Tensor, optional): ``(M, D)`` the reference
            bank unnormalised (with :attr:`BaseDistance.needs_raw_features`).
        epoch (int): The epoch the labels are for.
        process_group (Any, optional): The ``torch.distributed`` process
            group whose ranks compute this labelling together (the hook
            passes the world when the labeler shards). None (the default):
            this process holds every input and computes everything.
        row_block (tuple[int, int], optional): ``(start, stop)`` when
            :attr:`features` holds only the rows ``start:stop`` of the
            ``num_samples`` images, this rank's block of a sharded labelling
            (``knn_shard_bounds(N, D, W)[rank]``; the ``PseudoLabelHook``
            then never gathers the ``(N, D)`` bank); the other per-sample
            fields still hold all N entries. None (the default):
            :attr:`features` holds every row.
        num_samples (int, optional): ``N`` with a :attr:`row_block`.
    """
    features: Optional[torch.Tensor] = None
    raw_features: Optional[torch.Tensor] = None
    camids: Optional[torch.Tensor] = None
    true_ids: Optional[np.ndarray] = None
    reference_features: Optional[torch.Tensor] = None
    raw_reference_features: Optional[torch.Tensor] = None
    epoch: int = 0
    process_group: Optional[Any] = None
    row_block: Optional[Tuple[int, int]] = None
    num_samples: Optional[int] = None

    #: The fields with one entry per clustered sample.
    PER_SAMPLE = ('features', 'raw_features', 'camids', 'true_ids')

    @property
    def rank(self) -> int:
        """int: This process's rank in :attr:`process_group` (0 alone)."""
        if self.process_group is None:
            return 0
        from mmengine.dist import get_rank
        return get_rank(self.process_group)

    @property
    def world_size(self) -> int:
        """int: Ranks in :attr:`process_group` (1 alone)."""
        if self.process_group is None:
            return 1
        from mmengine.dist import get_world_size
        return get_world_size(self.process_group)

    def subset(self, index: np.ndarray) -> 'LabelingContext':
        """The context of the samples ``index`` (per-sample fields indexed,
        the reference bank and the epoch kept)."""
        picked = {}
        for name in self.PER_SAMPLE:
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                value = value[torch.from_numpy(index).to(value.device)]
            elif value is not None:
                value = np.asarray(value)[index]
            picked[name] = value
        return replace(self, **picked)

    @classmethod
    def of(cls, context: Optional['LabelingContext'] = None,
           **fields_: Any) -> 'LabelingContext':
        """``context`` with ``fields_`` replaced (a new one when None), so
        the keyword forms ``distance(feats, reference_features=ref)`` and
        ``clusterer(true_ids=ids)`` keep working.

        Raises:
            TypeError: If a keyword is not a field.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(fields_) - names)
        if unknown:
            raise TypeError(f'{cls.__name__} has no field(s) {unknown}; '
                            f'its fields are {sorted(names)}')
        if context is None:
            return cls(**fields_)
        if not isinstance(context, cls):
            raise TypeError(f'context must be a {cls.__name__}, got '
                            f'{type(context).__name__}')
        return replace(context, **fields_) if fields_ else context


@dataclass
class DistanceMatrix:
    """The ``N x N`` distance a :class:`BaseDistance` returns.

    Attributes:
        matrix (scipy.sparse.csr_matrix | np.ndarray): The distances. Sparse:
            every stored entry (explicit zeros included, the diagonal
            stored as 0) is a distance; a missing pair is at least
            :attr:`unstored_distance` says. Dense: every pair.
        unstored_distance (UnstoredDistance): What the missing pairs of a
            sparse matrix are (default: exactly 1, the Jaccard convention).
        max_distance (float): The pruning radius it was computed with: a
            pair with distance ``>= max_distance`` may be missing (1: every
            pair with overlapping neighbourhoods is stored).
        stats (dict[str, float]): Diagnostics of this computation (e.g. the
            spread of a source term), logged by the ``PseudoLabelHook``.

    Attributes that are not fields fall through to :attr:`matrix`
    (``.tocoo()``, ``.nnz``, ``.shape`` ...), and a dense one converts with
    ``np.asarray``, so code written for the bare matrix of the old call
    ``JaccardDistance(...)(feats)`` keeps working.
    """
    matrix: Union[sp.csr_matrix, np.ndarray]
    unstored_distance: UnstoredDistance = field(
        default_factory=UnstoredDistance)
    max_distance: float = 1.0
    stats: Dict[str, float] = field(default_factory=dict)

    @property
    def is_sparse(self) -> bool:
        """bool: The matrix is a scipy sparse matrix."""
        return sp.issparse(self.matrix)

    @property
    def num_samples(self) -> int:
        """int: ``N``."""
        return int(self.matrix.shape[0])

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not fields (nor being unpickled)
        if name.startswith('__') or name == 'matrix':
            raise AttributeError(name)
        return getattr(self.matrix, name)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.is_sparse:
            raise TypeError('a sparse DistanceMatrix has no dense value for '
                            'its missing pairs; read .matrix')
        return np.asarray(self.matrix, dtype=dtype)


def as_distance_matrix(dist: Union[DistanceMatrix, RawDistance]
                       ) -> DistanceMatrix:
    """Wrap a bare matrix (sparse: missing pairs at 1; a Tensor moves to
    numpy) in a :class:`DistanceMatrix`; one is returned as is."""
    if isinstance(dist, DistanceMatrix):
        return dist
    if isinstance(dist, torch.Tensor):
        dist = dist.detach().cpu().numpy()
    if sp.issparse(dist):
        return DistanceMatrix(dist.tocsr())
    return DistanceMatrix(np.asarray(dist))


class BaseDistance(metaclass=ABCMeta):
    """Base class of the distances of the :class:`PseudoLabeler`.

    Protocol: ``distance(features, context, pruning_radius) ->``
    :class:`DistanceMatrix`. A subclass implements :meth:`compute`, which
    receives the radius already resolved (:meth:`resolve_radius`) and must
    store at least every pair below it. It declares what it needs with class
    attributes, never through its call signature:

    - :attr:`needs_raw_features`: the hook then extracts the clustered and
      reference banks unnormalised too (``context.raw_features``,
      ``context.raw_reference_features``).

    Camera ids, the reference bank and the epoch are in the context; see
    the module docstring for an example. Register the subclass in
    ``TASK_UTILS`` to use it from a config.

    Attributes:
        max_distance (float): The configured radius; 1.0 (the default)
            leaves it to the labeler's pruning radius.
    """

    #: Read by the labeler and the hook: the distance reads raw banks.
    needs_raw_features: bool = False
    max_distance: float = 1.0

    def resolve_radius(self, pruning_radius: Optional[float]) -> float:
        """The radius of one call.

        A ``max_distance`` set below 1 is the user's choice and wins;
        otherwise the pruning radius (the labeler's ``eps + 1e-3`` for
        DBSCAN) applies, capped at 1.

        Args:
            pruning_radius (float, optional): From the labeler (None: none).

        Returns:
            float: Pairs at or beyond it need not be stored.
        """
        if pruning_radius is None or self.max_distance != 1.0:
            return self.max_distance
        return min(1.0, float(pruning_radius))

    def __call__(self,
                 features: torch.Tensor,
                 context: Optional[LabelingContext] = None,
                 pruning_radius: Optional[float] = None,
                 **context_fields: Any) -> DistanceMatrix:
        """Distance of all pairs of rows of ``features``.

        Args:
            features (Tensor): ``(N, D)`` L2-normalised features.
            context (LabelingContext, optional): The labelling context.
                Defaults to an empty one.
            pruning_radius (float, optional): Pairs at or beyond it may be
                left out (see :meth:`resolve_radius`).
            **context_fields: Fields of the context given as keywords
                (``reference_features=...``), the older call form.

        Returns:
            DistanceMatrix: ``N x N``.
        """
        context = LabelingContext.of(context, **context_fields)
        return self.compute(features, context,
                            self.resolve_radius(pruning_radius))

    @abstractmethod
    def compute(self, features: torch.Tensor, context: LabelingContext,
                max_distance: float) -> DistanceMatrix:
        """Compute the distance, storing every pair below ``max_distance``.

        Args:
            features (Tensor): ``(N, D)`` L2-normalised features.
            context (LabelingContext): The labelling context.
            max_distance (float): The resolved pruning radius.

        Returns:
            DistanceMatrix: With ``max_distance`` recorded.
        """


class BaseClusterer(metaclass=ABCMeta):
    """Base class of the clusterers of the :class:`PseudoLabeler`.

    Protocol: ``clusterer(distance, context) -> labels``, ``(N,)`` int64,
    ``0..C-1`` and -1 for outliers. ``distance`` is the
    :class:`DistanceMatrix` of the labeler's distance, or None when the
    labeler has none (the clusterer then works on ``context.features``).
    A subclass implements :meth:`cluster` and declares:

    - :meth:`pruning_radius`: the largest distance it can link (DBSCAN:
      ``eps + 1e-3``); the labeler passes it to the distance, which may
      then leave out the pairs beyond it (same labels, less memory).
      Default None: every pair is needed.
    - :attr:`needs_true_ids`: it labels from ``context.true_ids`` (the
      oracle); the labeler then computes no distance and marks the result
      ``labels_from='oracle'``.

    State kept across epochs (e.g. an eps computed at the first call) goes
    through ``state_dict()`` / ``load_state_dict()``, which the
    ``PseudoLabelHook`` saves in checkpoints.
    """

    #: Read by the labeler: labels come from the true ids (oracle).
    needs_true_ids: bool = False

    def pruning_radius(self) -> Optional[float]:
        """The largest distance the clusterer can link (None: unbounded)."""
        return None

    def __call__(self,
                 distance: Optional[Union[DistanceMatrix, torch.Tensor,
                                          RawDistance]] = None,
                 context: Optional[Union[LabelingContext,
                                         RawDistance]] = None,
                 *,
                 dist: Optional[Union[DistanceMatrix, RawDistance]] = None,
                 true_ids: Optional[np.ndarray] = None) -> np.ndarray:
        """Cluster.

        The protocol form is ``clusterer(distance, context)``. The older
        forms ``clusterer(feats)``, ``clusterer(feats, dist)``,
        ``clusterer(dist=dist)`` and ``clusterer(true_ids=ids)`` keep
        working: a Tensor first argument is the features, a second argument
        that is not a context is the distance.

        Returns:
            np.ndarray: int64 labels ``(N,)``, ``0..C-1``, -1 = outlier.
        """
        features = None
        if isinstance(distance, torch.Tensor):
            features, distance = distance, None
        if context is not None and not isinstance(context, LabelingContext):
            dist, context = context, None
        if dist is not None:
            distance = dist
        extra = {}
        if features is not None:
            extra['features'] = features
        if true_ids is not None:
            extra['true_ids'] = true_ids
        context = LabelingContext.of(context, **extra)
        if distance is not None:
            distance = as_distance_matrix(distance)
        return self.cluster(distance, context)

    @abstractmethod
    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Labels ``(N,)`` int64, ``0..C-1``, -1 = outlier."""

    def features_of(self, context: LabelingContext) -> torch.Tensor:
        """``context.features`` (for a clusterer that works on them).

        Raises:
            ValueError: If the context has none.
        """
        if context.features is None:
            raise ValueError(f'{type(self).__name__} clusters the features: '
                             'give them (context.features).')
        return context.features


def eps_radius(eps: Optional[float]) -> Optional[float]:
    """The pruning radius of a clusterer linking pairs ``<= eps``:
    ``eps + 1e-3`` (None for no eps, or an eps of 1 or more)."""
    if eps is None or not isinstance(eps, (int, float)) or eps >= 1 \
            or math.isnan(eps):
        return None
    return min(1.0, eps + 1e-3)
