# Copyright (c) mmreid_usl contributors. All rights reserved.
"""P x K sampling over the current pseudo-labels, distributed-safe."""
import math
import numbers
import warnings
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmreid_usl.registry import DATA_SAMPLERS
from mmreid_usl.utils.deprecation import renamed_attribute, renamed_kwargs
from .camera_strategies import build_camera_strategy

#: Named epoch lengths of :class:`PseudoIdentitySampler`
#: (``samples_per_epoch``); an int is a fixed length.
EPOCH_LENGTHS = ('dataset', 'clusters')


@DATA_SAMPLERS.register_module()
class PseudoIdentitySampler(Sampler):
    """Draw K instances of each pseudo-identity, P identities per batch.

    Hand-written: no library has an identity sampler whose labels change every
    epoch. The pseudo-labels live here (set by ``PseudoLabelHook`` through
    :meth:`set_labels`), never in the dataset; ``-1`` outliers are never
    sampled. An epoch visits the clusters in a random permutation and emits
    one block per cluster, chosen by ``camera_mode``
    (``docs/algorithms/common.md#samplers``):

    - ``'prefer_other'`` (RandomMultipleGallerySampler of Cluster Contrast /
      DCMIP): a random anchor, then ``K-1`` images from other cameras;
    - ``'more_camera'`` (ICE's MoreCameraSampler): one image per camera,
      topped up to ``K``;
    - ``'ignore'`` (RandomIdentitySampler of Theory, GDS's baseline): ``K``
      images of the cluster.

    Each mode is a registered strategy (``CAMERA_STRATEGIES``, exact rules in
    :mod:`.camera_strategies`); ``camera_mode`` also takes a config dict or a
    strategy object, so a new method registers its own without editing the
    sampler.

    Distributed use: the seed is ``sync_random_seed()`` (identical on all
    ranks) plus the epoch, so every rank builds the same global block list
    from the same labels; block ``j`` goes to rank ``j % world_size`` (whole
    identities per rank, fast-reid's idea), so every GPU sees K instances of
    each of its identities. Blocks are generated until every rank has
    ``samples_per_epoch`` indices, then each rank's list is truncated.

    **Epoch length** (``samples_per_epoch``, indices per rank):

    - an int: fixed, so ``len(sampler)`` never changes and
      ``len(dataloader)`` (hence ``EpochBasedTrainLoop.max_iters``) is
      known before any label exists;
    - ``None`` or ``'dataset'``: one pass over the whole dataset, outliers
      included, ``ceil(len(dataset) / world_size)`` rounded down to a
      multiple of K (at least K); fixed as well;
    - ``'clusters'``: the epoch of Theory's ``RandomIdentitySampler``
      (lsongx/DomainAdaptiveReID, ``reid/utils/data/sampler.py``: its
      length is ``#ids x K``): **every cluster once, K images each,
      outliers excluded**, i.e. ``floor(C / world_size) * K`` indices per
      rank for ``C`` clusters, recomputed at every :meth:`set_labels` (0
      before the first). Every rank holds the same labels, so every rank
      has the same length and, with the same ``batch_size``, the same
      number of iterations. With ``drop_last=True`` (Theory's DataLoader)
      and ``batch_size`` a multiple of K, an epoch is ``floor(C * K / (
      world_size * batch_size))`` iterations, exactly Theory's
      ``floor(C * K / batch_size)`` when ``world_size * batch_size`` is its
      batch; no cluster is drawn twice in an epoch (blocks of K images:
      ``'ignore'`` and ``'more_camera'``; ``'prefer_other'`` singleton
      blocks are shorter, so more blocks fill the length). ``len(dataloader)``
      then changes after every re-clustering: MMEngine's
      ``EpochBasedTrainLoop`` iterates the dataloader afresh every epoch
      (the ``PseudoLabelHook`` sets the labels in ``before_train_epoch``,
      before that), by-epoch parameter schedulers are unaffected, and the
      hook re-estimates ``max_iters`` (ETA, the last-iteration checks)
      from the new length; a by-epoch scheduler converted to iterations
      (``convert_to_iter_based=True``) would use the length at build time
      (0) and must not be used with it.

    Use ``batch_size`` = P x K with ``batch_size % num_instances == 0`` and
    (for a fixed length) ``samples_per_epoch % batch_size == 0`` so that
    batches hold whole identities (a fixed ``samples_per_epoch`` must itself
    be a multiple of K).

    Args:
        dataset (Sized): The training dataset. For the camera-aware modes it
            must provide ``get_camids()`` (as :class:`BaseReIDDataset` does)
            or ``get_data_info(i)['camid']``.
        num_instances (int): K, instances per identity. Defaults to 4.
        samples_per_epoch (int | str, optional): Indices this rank yields
            per epoch: an int (typically ``iters_per_epoch * batch_size``, a
            multiple of ``num_instances``), ``None`` / ``'dataset'`` (one
            pass over the dataset) or ``'clusters'`` (every cluster once,
            Theory's epoch); see above. Defaults to None.
        camera_mode (str | dict | BaseCameraStrategy): A
            ``CAMERA_STRATEGIES`` key (``'prefer_other'``, ``'more_camera'``,
            ``'ignore'``), a config dict or a strategy. Defaults to
            ``'prefer_other'``.
        seed (int, optional): Base seed; None draws one and synchronises it
            across ranks. Defaults to None.
        labels_from (str): ``'pseudo'`` (default): the labels come from
            :meth:`set_labels` (the ``PseudoLabelHook``). ``'gt'``: the
            dataset's true ids (``dataset.get_pids()``) are set at
            construction, for supervised training without a labelling hook
            (e.g. the source pre-training of domain adaptation).
            ``label_source`` is its deprecated name.
    """

    label_source = renamed_attribute('label_source', 'labels_from')

    @renamed_kwargs(label_source='labels_from')
    def __init__(self,
                 dataset,
                 num_instances: int = 4,
                 samples_per_epoch: Optional[Union[int, str]] = None,
                 camera_mode: str = 'prefer_other',
                 seed: Optional[int] = None,
                 labels_from: str = 'pseudo') -> None:
        if not isinstance(num_instances, int) or num_instances < 1:
            raise ValueError('num_instances must be a positive int, got '
                             f'{num_instances!r}.')
        #: The :class:`BaseCameraStrategy` that draws each block.
        self.block_strategy = build_camera_strategy(camera_mode)
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.num_instances = num_instances
        self.camera_mode = camera_mode
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0
        self.dataset_len = len(dataset)
        if samples_per_epoch is None:
            samples_per_epoch = 'dataset'
        if isinstance(samples_per_epoch, str):
            if samples_per_epoch not in EPOCH_LENGTHS:
                raise ValueError(
                    f'samples_per_epoch must be an int, None or one of '
                    f'{EPOCH_LENGTHS}, got {samples_per_epoch!r}.')
            #: ``'dataset'``, ``'clusters'`` or ``'fixed'`` (an int).
            self.epoch_length = samples_per_epoch
        elif (not isinstance(samples_per_epoch, numbers.Integral)
              or isinstance(samples_per_epoch, bool)
              or samples_per_epoch <= 0
              or samples_per_epoch % num_instances != 0):
            raise ValueError(
                f'samples_per_epoch ({samples_per_epoch!r}) must be a '
                f'positive multiple of num_instances ({num_instances}) so '
                'that batches hold whole identities, None, or one of '
                f'{EPOCH_LENGTHS}.')
        else:
            self.epoch_length = 'fixed'
        if self.epoch_length == 'dataset':
            per_rank = math.ceil(self.dataset_len / world_size)
            samples_per_epoch = max(per_rank // num_instances,
                                    1) * num_instances
        elif self.epoch_length == 'clusters':
            samples_per_epoch = 0  # set by set_labels
        #: Indices this rank yields in the current epoch (``len(self)``).
        self.samples_per_epoch = int(samples_per_epoch)
        self.camids: Optional[np.ndarray] = None
        if self.block_strategy.needs_camids:
            self.camids = self._read_camids(dataset)
        self.labels: Optional[np.ndarray] = None
        self._members: List[np.ndarray] = []
        if labels_from not in ('pseudo', 'gt'):
            raise ValueError("labels_from must be 'pseudo' or 'gt', got "
                             f'{labels_from!r}.')
        self.labels_from = labels_from
        if labels_from == 'gt':
            if not hasattr(dataset, 'get_pids'):
                raise TypeError(
                    "PseudoIdentitySampler(labels_from='gt') needs a "
                    'dataset with true ids (get_pids()); '
                    f'{type(dataset).__name__} has none.')
            self.set_labels(np.asarray(dataset.get_pids()))

    @staticmethod
    def _read_camids(dataset) -> np.ndarray:
        if hasattr(dataset, 'get_camids'):
            camids = dataset.get_camids()
        else:
            camids = [
                dataset.get_data_info(i)['camid'] for i in range(len(dataset))
            ]
        return np.asarray(camids, dtype=np.int64)

    def set_labels(
            self, labels: Union[np.ndarray, torch.Tensor,
                                Sequence[int]]) -> None:
        """Set the pseudo-label of every dataset sample (``-1`` = outlier).

        Labels need not be contiguous. Call with bit-identical labels on
        every rank (the hook broadcasts them).

        Raises:
            ValueError: Wrong length or labels below -1. All-outlier labels
                (zero clusters) only warn: the epoch then yields nothing.
        """
        if isinstance(labels, torch.Tensor):
            labels = labels.detach().cpu().numpy()
        labels = np.asarray(labels).reshape(-1)
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f'labels must be integers, got {labels.dtype}.')
        labels = labels.astype(np.int64)
        if labels.size != self.dataset_len:
            raise ValueError(f'got {labels.size} labels for a dataset of '
                             f'{self.dataset_len} samples.')
        if labels.size and labels.min() < -1:
            raise ValueError('labels must be >= -1 (-1 marks outliers), got '
                             f'{labels.min()}.')
        valid = np.flatnonzero(labels >= 0)
        if valid.size == 0:
            # Zero clusters must not crash a long run: the epoch is skipped.
            warnings.warn(
                f'all {labels.size} samples are outliers (-1): zero clusters, '
                'so this epoch yields no sample. Check the features or '
                'loosen the clusterer (e.g. a larger DBSCAN eps).')
            self._members = []
            self.labels = labels
            self._update_length()
            return
        # Group the sample indices by cluster (ascending index in a cluster).
        order = valid[np.argsort(labels[valid], kind='stable')]
        _, starts = np.unique(labels[order], return_index=True)
        self._members = np.split(order, starts[1:])
        self.labels = labels
        self._update_length()

    def _update_length(self) -> None:
        """``'clusters'``: ``floor(C / world_size) * K`` for C clusters."""
        if self.epoch_length == 'clusters':
            self.samples_per_epoch = (self.num_clusters //
                                      self.world_size) * self.num_instances

    @property
    def num_clusters(self) -> int:
        """int: Number of clusters of the current labels (0 before any)."""
        return len(self._members)

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; it is added to the seed (``DistSamplerSeedHook``)."""
        self.epoch = epoch

    def _block(self, rng: np.random.Generator, members: np.ndarray) -> list:
        cams = None if self.camids is None else self.camids[members]
        return self.block_strategy(rng, members, cams, self.num_instances)

    def _indices_of_rank(self) -> List[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        per_rank: List[List[int]] = [[] for _ in range(self.world_size)]
        block_id = 0
        while min(len(x) for x in per_rank) < self.samples_per_epoch:
            for c in rng.permutation(len(self._members)):
                block = self._block(rng, self._members[c])
                per_rank[block_id % self.world_size].extend(block)
                block_id += 1
        return per_rank[self.rank][:self.samples_per_epoch]

    def __iter__(self) -> Iterator[int]:
        if self.labels is None:
            raise RuntimeError(
                'PseudoIdentitySampler has no pseudo-labels yet: call '
                'set_labels() (PseudoLabelHook does it before each training '
                'epoch) before iterating.')
        if not self._members:  # zero clusters: an empty epoch
            return iter([])
        return iter(self._indices_of_rank())

    def __len__(self) -> int:
        """int: Indices this rank yields per epoch (constant unless
        ``samples_per_epoch='clusters'``, which follows the labels)."""
        return self.samples_per_epoch
