# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Feature banks -> distance -> clusterer -> typed pseudo-label result."""
import inspect
import time
import warnings
from typing import Dict, Optional, Union

import numpy as np
import torch

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.structures import PseudoLabelResult, relabel_contiguous
from mmreid_usl.utils.build import build_module

DEGENERATE_ACTIONS = ('raise', 'skip')


@TASK_UTILS.register_module()
class PseudoLabeler:
    """The pseudo-labelling pipeline of one epoch, without a Runner.

    Given the L2-normalised feature banks of the training set (by encoder
    name), it

    1. computes the distance of the clustered bank ``features[feat_source]``
       (k-reciprocal Jaccard by default; a distance whose ``__call__``
       accepts ``reference_features`` also gets the reference bank, e.g. the
       labelled source domain of domain adaptation; a distance that declares
       ``needs_raw_features`` also gets the unnormalised clustered and
       reference banks as ``raw_features`` / ``raw_reference_features``,
       which the ``PseudoLabelHook`` then extracts
       (:attr:`needs_raw_features`);
    2. runs the clusterer on it (DBSCAN by default);
    3. checks the result is not degenerate;
    4. returns a :class:`PseudoLabelResult` with the contiguous labels, the
       cluster centroids and every bank.

    With ``label_source='gt'`` steps 1-2 are replaced by the true ids of the
    training set (supervised training, or the upper bound of an
    unsupervised config), through the same result. A clusterer that declares
    ``needs_true_ids`` (:class:`OracleClusterer`: true ids with merge/split
    noise) gets them too; its results are marked ``label_source='oracle'``
    and logged as such, so they cannot be mistaken for a real run.

    **Data fraction** (``fraction < 1``, Cluster Contrast Table 8): each
    labelling clusters only a random ``fraction`` of the training set (drawn
    with ``seed`` and the epoch, so resume draws the same); the other images
    get label -1 and are not trained on that epoch.

    **Eps pruning** (``prune_by_eps``): DBSCAN only looks at pairs within
    ``eps``. A sparse distance with the default ``max_distance=1`` (every
    overlapping pair) is told to keep only the pairs ``< eps + 1e-3``: the
    labels are identical and the memory at 200k images drops about 10x. It
    applies when the clusterer has a numeric ``eps < 1`` and the distance a
    ``max_distance`` of 1; it is re-applied if ``eps`` changes (a clusterer
    may compute its eps from the data).

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
                 seed: int = 0) -> None:
        if on_degenerate not in DEGENERATE_ACTIONS:
            raise ValueError(f'on_degenerate must be one of '
                             f'{DEGENERATE_ACTIONS}, got {on_degenerate!r}')
        if clusterer is None:
            raise ValueError('PseudoLabeler needs a clusterer.')
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f'fraction must be in (0, 1], got {fraction}')
        self.fraction = fraction
        self.seed = seed
        self.distance = build_module(distance, TASK_UTILS)
        self.clusterer = build_module(clusterer, TASK_UTILS)
        self.prune_by_eps = prune_by_eps
        self.min_clusters = min_clusters
        self.on_degenerate = on_degenerate
        self._default_max_distance = getattr(self.distance, 'max_distance',
                                             None)
        self._distance_takes_reference = self.distance is not None and \
            'reference_features' in inspect.signature(
                self.distance.__call__).parameters
        self.last_timing: Dict[str, float] = {}
        #: Diagnostics of the distance of the last call (e.g. the source
        #: term of :class:`SourceAwareJaccardDistance`), logged by the hook.
        self.last_stats: Dict[str, float] = {}
        self.needs_true_ids = bool(
            getattr(self.clusterer, 'needs_true_ids', False))

    @property
    def needs_raw_features(self) -> bool:
        """bool: The distance also reads the unnormalised banks."""
        return bool(getattr(self.distance, 'needs_raw_features', False))

    def _apply_eps_pruning(self) -> None:
        eps = getattr(self.clusterer, 'eps', None)
        if not self.prune_by_eps or self._default_max_distance != 1.0 \
                or not isinstance(eps, (int, float)):
            return
        self.distance.max_distance = min(1.0, eps + 1e-3) if eps < 1 \
            else 1.0

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
    def __call__(self,
                 features: Union[torch.Tensor, Dict[str, torch.Tensor]],
                 feat_source: Optional[str] = None,
                 camids: Optional[torch.Tensor] = None,
                 epoch: int = 0,
                 reference_features: Optional[torch.Tensor] = None,
                 true_ids: Optional[np.ndarray] = None,
                 label_source: str = 'pseudo',
                 raw_features: Optional[torch.Tensor] = None,
                 raw_reference_features: Optional[torch.Tensor] = None
                 ) -> PseudoLabelResult:
        """Label the training set.

        Args:
            features (Tensor | dict[str, Tensor]): ``(N, D)`` L2-normalised
                feature bank(s) in dataset order.
            feat_source (str, optional): The bank to cluster (required with
                several banks).
            camids (Tensor, optional): ``(N,)`` camera ids.
            epoch (int): Stored in the result.
            reference_features (Tensor, optional): ``(M, D)`` reference bank
                for the distance.
            true_ids (array-like, optional): ``(N,)`` true ids; required for
                ``label_source='gt'``.
            label_source (str): ``'pseudo'`` or ``'gt'``.
            raw_features (Tensor, optional): ``(N, D)`` the clustered bank
                unnormalised (for a distance with ``needs_raw_features``).
            raw_reference_features (Tensor, optional): ``(M, D)`` the
                reference bank unnormalised (likewise).

        Returns:
            PseudoLabelResult: On the device of the features; centroids are
            computed on CPU so that they are bit-identical wherever the
            result is rebuilt.
        """
        if isinstance(features, torch.Tensor):
            features = {feat_source or 'student': features}
        if feat_source is None:
            feat_source = next(iter(features))
        feats = features[feat_source]
        self.last_timing = {}
        self.last_stats = {}
        start = time.perf_counter()
        if label_source == 'gt':
            if true_ids is None:
                raise ValueError("label_source='gt' needs the true ids of "
                                 'the training set.')
            labels = relabel_contiguous(np.asarray(true_ids))
        else:
            subset = self._subset(len(feats), epoch)
            sub_feats = feats if subset is None else feats[
                torch.from_numpy(subset).to(feats.device)]
            if self.needs_true_ids:
                label_source = 'oracle'
                if true_ids is None:
                    raise ValueError(
                        f'{self.describe_clusterer()} needs the true ids of '
                        'the training set.')
                sub_ids = np.asarray(true_ids)
                if subset is not None:
                    sub_ids = sub_ids[subset]
                sub_labels = self.clusterer(sub_feats, None, true_ids=sub_ids)
            else:
                self._apply_eps_pruning()
                kwargs = {}
                if self.distance is not None and \
                        self._distance_takes_reference:
                    if reference_features is not None:
                        kwargs['reference_features'] = reference_features
                    if self.needs_raw_features:
                        if raw_features is None or \
                                raw_reference_features is None:
                            raise ValueError(
                                f'{type(self.distance).__name__} needs the '
                                'unnormalised banks (raw_features, '
                                'raw_reference_features).')
                        kwargs['raw_features'] = raw_features \
                            if subset is None else raw_features[
                                torch.from_numpy(subset).to(
                                    raw_features.device)]
                        kwargs['raw_reference_features'] = \
                            raw_reference_features
                if self.distance is None:
                    dist = None
                else:
                    dist = self.distance(sub_feats, **kwargs)
                    self.last_stats = dict(
                        getattr(self.distance, 'last_stats', None) or {})
                self.last_timing['distance_time'] = \
                    time.perf_counter() - start
                sub_labels = self.clusterer(sub_feats, dist)
            labels = relabel_contiguous(sub_labels)
            if subset is not None:
                full = np.full(len(feats), -1, dtype=np.int64)
                full[subset] = labels
                labels = full
        self.last_timing['cluster_time'] = time.perf_counter() - start
        num_clusters = int(labels.max()) + 1 if (labels >= 0).any() else 0
        if label_source == 'pseudo' and num_clusters < self.min_clusters:
            msg = (f'Epoch {epoch}: {self.describe_clusterer()} found '
                   f'{num_clusters} cluster(s) and '
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
        cpu_banks = {k: v.detach().cpu() for k, v in features.items()}
        result = PseudoLabelResult.from_labels(
            labels,
            cpu_banks,
            feat_source=feat_source,
            camids=None if camids is None else torch.as_tensor(
                camids, dtype=torch.long).cpu(),
            epoch=epoch,
            label_source=label_source,
            reference_features=None if reference_features is None else
            reference_features.detach().cpu())
        return result.to(feats.device)

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
