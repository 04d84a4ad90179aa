# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Feature banks -> distance -> clusterer -> typed pseudo-label result."""
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.structures import (LABELS_FROM, PseudoLabelResult,
                                   relabel_contiguous)
from mmreid_usl.utils.build import build_module
from mmreid_usl.utils.deprecation import renamed_kwargs
from .base import BaseClusterer, BaseDistance, LabelingContext
from .sharded.labeling import ShardedLabelingMixin

DEGENERATE_ACTIONS = ('raise', 'skip')


@dataclass
class LabelingOutput:
    """What one labelling produces before it becomes a result.

    Only :attr:`labels` and :attr:`labels_from` define the result: the
    ``PseudoLabelHook`` broadcasts these two and every rank builds the same
    :class:`PseudoLabelResult` from them (:meth:`PseudoLabeler.build_result`).

    Attributes:
        labels (np.ndarray): ``(N,)`` int64 labels ``0..C-1``, -1 outliers.
        labels_from (str): One of ``LABELS_FROM``.
        timing (dict[str, float]): ``distance_time`` and ``cluster_time``
            (seconds since the start of the labelling).
        stats (dict[str, float]): The distance's :attr:`DistanceMatrix.stats`.
    """
    labels: np.ndarray
    labels_from: str = 'pseudo'
    timing: Dict[str, float] = field(default_factory=dict)
    stats: Dict[str, float] = field(default_factory=dict)


@TASK_UTILS.register_module()
class PseudoLabeler(ShardedLabelingMixin):
    r"""The pseudo-labelling pipeline of one epoch, without a Runner.

    Given the L2-normalised feature banks of the training set (by encoder
    name), it

    1. computes the distance of the clustered bank (``cluster_encoder``)
       (k-reciprocal Jaccard by default) with a :class:`LabelingContext`
       (camera ids, the reference bank of domain adaptation, the raw banks
       when the distance declares ``needs_raw_features``, the epoch) and
       the clusterer's pruning radius;
    2. runs the clusterer on it (DBSCAN by default);
    3. checks the result is not degenerate;
    4. returns a :class:`PseudoLabelResult` with the contiguous labels, the
       cluster centroids and every bank (:meth:`build_result`).

    Distances and clusterers implement :class:`BaseDistance` and
    :class:`BaseClusterer` (``mmreid_usl/clustering/base.py`` states the
    protocol). :meth:`label` is steps 1-3 alone (what the
    ``PseudoLabelHook`` runs).

    **Sharded**: with a ``context.process_group`` of W > 1 ranks, every rank
    calls :meth:`label`; the ranks compute the kNN and Jaccard rows of their
    blocks, rank 0 clusters, every rank gets the labels. ``'auto'`` shards
    where the labels equal one process's (:meth:`sharded_fallback`; the
    determinism condition is in ``clustering/sharded/labeling.py``). Each
    rank's context may hold all N rows or only its block
    (``context.row_block``); with blocks, :meth:`build_result_of_blocks`
    builds the result without ever gathering the ``(N, D)`` banks.

    With ``labels_from='gt'`` steps 1-2 are replaced by the true ids of the
    training set (supervised training, or the upper bound of an
    unsupervised config), through the same result. A clusterer that declares
    ``needs_true_ids`` (:class:`OracleClusterer`: true ids with merge/split
    noise) gets them in the context; its results are marked
    ``labels_from='oracle'`` and logged as such, so they cannot be mistaken
    for a real run.

    **Data fraction** (``fraction < 1``, Cluster Contrast Table 8): each
    labelling clusters only a random ``fraction`` of the training set (drawn
    with ``seed`` and the epoch, so resume draws the same); the other images
    get label -1 and are not trained on that epoch.

    **Eps pruning** (``prune_by_eps``): DBSCAN only looks at pairs within
    ``eps``, so the labeler passes the clusterer's
    :meth:`~BaseClusterer.pruning_radius` (:math:`r = \varepsilon +
    10^{-3}`) to the distance, which keeps only the pairs :math:`d < r`
    unless its own ``max_distance`` is set below 1: the labels are
    identical and the memory at 200k images drops about 10x. The radius is
    asked at every call, so it follows an eps computed from the data; no
    component is modified.

    **Degenerate clusterings**: fewer than ``min_clusters`` clusters (e.g.
    an eps that puts everything in one cluster, or nothing in any) either
    stop the run with a message naming the clusterer's parameters and the
    counts (``on_degenerate='raise'``, default) or, explicitly, skip the
    epoch (``'skip'``: every label becomes -1, so the epoch has no training
    iteration, with a warning).

    **State**: a clusterer that keeps state across epochs (e.g. an eps
    computed once at the first clustering) exposes ``state_dict()`` /
    ``load_state_dict()``; :meth:`state_dict` forwards it, and the
    ``PseudoLabelHook`` stores it in the checkpoint so resume restores it.

    Args:
        distance (dict, optional): ``TASK_UTILS`` config of the distance.
            None lets the clusterer work on the features. Defaults to
            ``dict(type='JaccardDistance', k1=30, k2=6)``.
        clusterer (dict): ``TASK_UTILS`` config of the clusterer. Defaults
            to ``dict(type='DBSCANClusterer', eps=0.6, min_samples=4)``.
        prune_by_eps (bool): See above. Defaults to True.
        min_clusters (int): Fewest clusters a labelling may have. Defaults
            to 2.
        on_degenerate (str): ``'raise'`` or ``'skip'``. Defaults to
            ``'raise'``.
        fraction (float): Fraction of the training set labelled each time.
            Defaults to 1.0.
        seed (int): Seed of the ``fraction`` draw. Defaults to 0.
        sharded (str | bool): ``'auto'``, True (also where the labels may
            differ in the last bits, e.g. CUDA) or False. Defaults to
            ``'auto'``.
        knn_threads (int, optional): faiss threads of the kNN, on every
            rank and in one process (None: faiss's current count).
    """

    def __init__(self,
                 distance: Optional[dict] = dict(
                     type='JaccardDistance', k1=30, k2=6),
                 clusterer: dict = dict(
                     type='DBSCANClusterer', eps=0.6, min_samples=4),
                 prune_by_eps: bool = True,
                 min_clusters: int = 2,
                 on_degenerate: str = 'raise',
                 fraction: float = 1.0,
                 seed: int = 0,
                 sharded: Union[str, bool] = 'auto',
                 knn_threads: Optional[int] = None) -> None:
        if on_degenerate not in DEGENERATE_ACTIONS:
            raise ValueError(f'on_degenerate must be one of '
                             f'{DEGENERATE_ACTIONS}, got {on_degenerate!r}')
        if clusterer is None:
            raise ValueError('PseudoLabeler needs a clusterer.')
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f'fraction must be in (0, 1], got {fraction}')
        self.fraction, self.seed = fraction, seed
        self.distance = build_module(distance, TASK_UTILS)
        self.clusterer = build_module(clusterer, TASK_UTILS)
        if self.distance is not None and not isinstance(
                self.distance, BaseDistance):
            raise TypeError(
                f'PseudoLabeler: the distance must be a BaseDistance '
                f'(mmreid_usl.clustering.base), got '
                f'{type(self.distance).__name__}.')
        if not isinstance(self.clusterer, BaseClusterer):
            raise TypeError(
                f'PseudoLabeler: the clusterer must be a BaseClusterer '
                f'(mmreid_usl.clustering.base), got '
                f'{type(self.clusterer).__name__}.')
        self.prune_by_eps, self.min_clusters = prune_by_eps, min_clusters
        self.on_degenerate = on_degenerate
        self.sharded, self.knn_threads = sharded, knn_threads
        self._check_sharded_options()
        #: Timing and distance diagnostics of the last :meth:`label`, for
        #: interactive use (the hook reads its :class:`LabelingOutput`).
        self.last_timing: Dict[str, float] = {}
        self.last_stats: Dict[str, float] = {}

    @property
    def needs_raw_features(self) -> bool:
        """bool: The distance also reads the unnormalised banks."""
        return self.distance is not None and \
            self.distance.needs_raw_features

    @property
    def needs_true_ids(self) -> bool:
        """bool: The clusterer labels from the true ids (oracle)."""
        return self.clusterer.needs_true_ids

    def pruning_radius(self) -> Optional[float]:
        """The radius passed to the distance (None: no pruning)."""
        return self.clusterer.pruning_radius() if self.prune_by_eps \
            else None

    def describe_clusterer(self) -> str:
        """``Type(param=value, ...)`` of the clusterer, for messages."""
        params = {
            k: v
            for k, v in vars(self.clusterer).items()
            if not k.startswith('_') and isinstance(v, (int, float, str))
            and k != 'calls'
        }
        args = ', '.join(f'{k}={v}' for k, v in params.items())
        return f'{type(self.clusterer).__name__}({args})'

    @torch.no_grad()
    @renamed_kwargs(feat_source='cluster_encoder', label_source='labels_from')
    def __call__(self,
                 features: Union[torch.Tensor, Dict[str, torch.Tensor]],
                 cluster_encoder: Optional[str] = None,
                 camids: Optional[torch.Tensor] = None,
                 epoch: int = 0,
                 reference_features: Optional[torch.Tensor] = None,
                 true_ids: Optional[np.ndarray] = None,
                 labels_from: str = 'pseudo',
                 raw_features: Optional[torch.Tensor] = None,
                 raw_reference_features: Optional[torch.Tensor] = None
                 ) -> PseudoLabelResult:
        """Label the training set: :meth:`label`, then :meth:`build_result`.

        Args:
            features (Tensor | dict[str, Tensor]): ``(N, D)`` L2-normalised
                feature bank(s) in dataset order.
            cluster_encoder (str, optional): The encoder whose bank is
                clustered (required with several banks; ``feat_source``
                is its deprecated name).
            camids (Tensor, optional): ``(N,)`` camera ids.
            epoch (int): Stored in the result.
            reference_features (Tensor, optional): ``(M, D)`` reference bank
                for the distance.
            true_ids (array-like, optional): ``(N,)`` true ids; required for
                ``labels_from='gt'`` and the oracle.
            labels_from (str): ``'pseudo'`` or ``'gt'`` (``label_source``
                is its deprecated name).
            raw_features (Tensor, optional): ``(N, D)`` the clustered bank
                unnormalised (for a distance with ``needs_raw_features``).
            raw_reference_features (Tensor, optional): ``(M, D)`` the
                reference bank unnormalised (likewise).

        Returns:
            PseudoLabelResult: On the device of the features; centroids are
            computed on CPU so that they are bit-identical wherever the
            result is built.
        """
        banks, cluster_encoder = self.banks_of(features, cluster_encoder)
        context = LabelingContext(
            features=banks[cluster_encoder],
            raw_features=raw_features,
            camids=camids,
            true_ids=None if true_ids is None else np.asarray(true_ids),
            reference_features=reference_features,
            raw_reference_features=raw_reference_features,
            epoch=epoch)
        output = self.label(context, labels_from)
        return self.build_result(output.labels, output.labels_from, banks,
                                 cluster_encoder, camids, epoch)

    @staticmethod
    def banks_of(features: Union[torch.Tensor, Dict[str, torch.Tensor]],
                 cluster_encoder: Optional[str] = None
                 ) -> Tuple[Dict[str, torch.Tensor], str]:
        """``features`` as a dict of banks and the name of the clustered
        one (a single tensor is ``cluster_encoder`` or ``'student'``)."""
        if isinstance(features, torch.Tensor):
            features = {cluster_encoder or 'student': features}
        if cluster_encoder is None:
            cluster_encoder = next(iter(features))
        return features, cluster_encoder

    @staticmethod
    def build_result(labels: Union[np.ndarray, torch.Tensor],
                     labels_from: str,
                     features: Dict[str, torch.Tensor],
                     cluster_encoder: str,
                     camids: Optional[torch.Tensor] = None,
                     epoch: int = 0) -> PseudoLabelResult:
        """The one constructor of the result, called by every rank.

        The centroids are computed on CPU (bit-identical on every rank and
        machine) and moved to the device of the clustered bank; the banks
        are kept where they are.

        Args:
            labels (np.ndarray | Tensor): ``(N,)`` labels, -1 outliers.
            labels_from (str): One of ``LABELS_FROM``.
            features (dict[str, Tensor]): The banks by encoder name.
            cluster_encoder (str): The clustered bank.
            camids (Tensor, optional): ``(N,)`` camera ids.
            epoch (int): The epoch the labels are for.

        Returns:
            PseudoLabelResult: On the device of the clustered bank.
        """
        device = features[cluster_encoder].device
        return PseudoLabelResult.from_labels(
            labels,
            features,
            cluster_encoder=cluster_encoder,
            centroid_device='cpu',
            camids=None if camids is None else torch.as_tensor(
                camids, dtype=torch.long).to(device),
            epoch=epoch,
            labels_from=labels_from)

    @staticmethod
    def build_result_of_blocks(labels: Union[np.ndarray, torch.Tensor],
                               labels_from: str,
                               blocks: Dict[str, torch.Tensor],
                               row_block: Tuple[int, int],
                               cluster_encoder: str,
                               camids: Optional[torch.Tensor] = None,
                               epoch: int = 0,
                               process_group=None) -> PseudoLabelResult:
        r"""The result of a labelling whose banks were never gathered.

        Every rank of ``process_group`` calls it with its row block of each
        bank. The centroids of every bank,
        :math:`c_j = \frac{1}{|C_j|} \sum_{i \in C_j} f_i`, are summed
        per rank and all-reduced (:func:`sharded_cluster_means`), on CPU
        as in :meth:`build_result`: the same bits as :meth:`build_result`
        of the full banks in one process. The result has no rows
        (``banks_gathered=False``): ``(N,)`` labels and camera ids and
        ``(C, D)`` centroids per bank, ``O(N + C D)`` per rank.

        Args:
            labels (np.ndarray | Tensor): ``(N,)`` labels, -1 outliers.
            labels_from (str): One of ``LABELS_FROM``.
            blocks (dict[str, Tensor]): This rank's rows ``row_block`` of
                every bank, by encoder name.
            row_block (tuple[int, int]): ``(start, stop)`` of the blocks.
            cluster_encoder (str): The clustered bank.
            camids (Tensor, optional): ``(N,)`` camera ids.
            epoch (int): The epoch the labels are for.
            process_group: The ranks holding the other blocks (default:
                the world).

        Returns:
            PseudoLabelResult: On the device of the clustered block,
            identical on every rank.
        """
        from .sharded import sharded_cluster_means
        device = blocks[cluster_encoder].device
        lab = torch.from_numpy(relabel_contiguous(labels))
        valid = lab >= 0
        num_clusters = int(lab.max()) + 1 if bool(valid.any()) else 0
        start, stop = row_block
        centroids = {
            name: sharded_cluster_means(block.detach().cpu(),
                                        lab[start:stop], num_clusters,
                                        process_group).to(block.device)
            for name, block in blocks.items()
        }
        return PseudoLabelResult(
            labels=lab.to(device),
            num_clusters=num_clusters,
            num_outliers=int((~valid).sum()),
            centroids=centroids[cluster_encoder],
            features={},
            cluster_encoder=cluster_encoder,
            camids=None if camids is None else torch.as_tensor(
                camids, dtype=torch.long).to(device),
            epoch=epoch,
            labels_from=labels_from,
            bank_centroids=centroids,
            banks_gathered=False)

    @torch.no_grad()
    def label(self,
              context: LabelingContext,
              labels_from: str = 'pseudo') -> LabelingOutput:
        """Steps 1-3: labels of ``context.features`` (no result built).

        Args:
            context (LabelingContext): With ``features``, the clustered
                bank (in a sharded labelling possibly only this rank's
                ``row_block`` of it), and whatever the distance and
                clusterer read.
            labels_from (str): ``'pseudo'`` (cluster) or ``'gt'`` (the
                true ids of the context).

        Returns:
            LabelingOutput: Contiguous labels, their origin, timing and the
            distance's diagnostics.
        """
        if labels_from not in LABELS_FROM:
            raise ValueError(f'labels_from must be one of {LABELS_FROM}, '
                             f'got {labels_from!r}')
        feats = context.features
        timing: Dict[str, float] = {}
        stats: Dict[str, float] = {}
        start = time.perf_counter()
        if labels_from == 'gt':
            if context.true_ids is None:
                raise ValueError("labels_from='gt' needs the true ids of "
                                 'the training set.')
            labels = relabel_contiguous(np.asarray(context.true_ids))
        elif context.world_size > 1 and self.uses_sharded(context):
            sub_labels, timing, stats = self._label_sharded(context, start)
            labels = relabel_contiguous(sub_labels)
        elif context.row_block is not None:
            raise ValueError(
                f'The context holds only the rows {context.row_block} of '
                f'the bank, which only the sharded labelling reads; this '
                f'one is not sharded ({self.sharded_fallback(context)}).')
        else:
            subset = self._subset(len(feats), context.epoch)
            sub = context if subset is None else context.subset(subset)
            if self.needs_true_ids:
                labels_from = 'oracle'
                if sub.true_ids is None:
                    raise ValueError(
                        f'{self.describe_clusterer()} needs the true ids of '
                        'the training set.')
                sub_labels = self.clusterer(None, sub)
            else:
                dist = None
                if self.distance is not None:
                    if self.needs_raw_features and (
                            sub.raw_features is None
                            or sub.raw_reference_features is None):
                        raise ValueError(
                            f'{type(self.distance).__name__} needs the '
                            'unnormalised banks (raw_features, '
                            'raw_reference_features).')
                    dist = self._distance(sub)
                    stats = dict(dist.stats)
                timing['distance_time'] = time.perf_counter() - start
                sub_labels = self.clusterer(dist, sub)
            labels = relabel_contiguous(sub_labels)
            if subset is not None:
                full = np.full(len(feats), -1, dtype=np.int64)
                full[subset] = labels
                labels = full
        timing['cluster_time'] = time.perf_counter() - start
        num_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
        if labels_from == 'pseudo' and num_clusters < self.min_clusters:
            msg = (f'Epoch {context.epoch}: {self.describe_clusterer()} '
                   f'found {num_clusters} cluster(s) and '
                   f'{int((labels < 0).sum())} outlier(s) among '
                   f'{len(labels)} images (min_clusters='
                   f'{self.min_clusters}): the pseudo-labels are '
                   'degenerate. Check eps / min_samples of the clusterer '
                   '(a smaller eps splits one big cluster, a larger one '
                   'joins outliers).')
            if self.on_degenerate == 'raise':
                raise RuntimeError(msg + " To skip such epochs instead, set "
                                   "the labeler's on_degenerate='skip'.")
            warnings.warn(msg + ' Skipping: this epoch has no training '
                          'iteration.')
            labels = np.full_like(labels, -1)
        self.last_timing, self.last_stats = timing, stats
        return LabelingOutput(labels, labels_from, timing, stats)

    def _subset(self, num: int, epoch: int) -> Optional[np.ndarray]:
        """Sorted indices of this epoch's data fraction (None: all)."""
        if self.fraction >= 1.0:
            return None
        rng = np.random.default_rng([self.seed, epoch])
        size = max(1, int(round(self.fraction * num)))
        return np.sort(rng.choice(num, size=size, replace=False))

    def state_dict(self) -> dict:
        """State of the clusterer (and distance) that must survive resume."""
        state = {}
        for name in ('clusterer', 'distance'):
            obj = getattr(self, name)
            if hasattr(obj, 'state_dict'):
                state[name] = obj.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        for name, sub in state.items():
            obj = getattr(self, name, None)
            if obj is None or not hasattr(obj, 'load_state_dict'):
                raise KeyError(f'PseudoLabeler: checkpoint has a {name!r} '
                               'state but this labeler\'s '
                               f'{name} cannot load one.')
            obj.load_state_dict(sub)
