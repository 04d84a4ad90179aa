# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Oracle "clustering": the true identities, optionally corrupted."""
from typing import Optional

import numpy as np

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.structures import relabel_contiguous
from .base import BaseClusterer, DistanceMatrix, LabelingContext


@TASK_UTILS.register_module()
class OracleClusterer(BaseClusterer):
    """Return the true ids as cluster labels, with optional label noise.

    Cluster Contrast (Dai et al., ACCV 2022, https://arxiv.org/abs/2103.11568,
    Table 5) trains with ground-truth labels as an upper bound and studies
    how label noise hurts. This clusterer gives such labels through the same
    pipeline as a real clustering (the :class:`PseudoLabeler` hands it the
    true ids of the training set):

    - ``merge_ratio``: that fraction of the identities is merged in random
      pairs (two people become one pseudo-identity; ``round(r * P / 2)``
      pairs);
    - ``split_ratio``: that fraction of the identities is split in two
      random halves (one person becomes two pseudo-identities).

    Merged identities are never split. The draws use a generator seeded by
    ``seed`` and the number of calls, so they change every epoch, are the
    same on resume, and (the labeler runs on rank 0 only) on every rank.

    It is meant for upper bounds and label-noise studies, never for a real
    unsupervised result: the labeler logs "oracle" with the noise settings
    and the result's ``labels_from`` is ``'oracle'``.

    Args:
        merge_ratio (float): Fraction of identities merged in pairs.
        split_ratio (float): Fraction of identities split in two.
        seed (int): Base seed. Defaults to 0.
    """

    #: The labeler hands it the true ids (``context.true_ids``).
    needs_true_ids = True

    def __init__(self,
                 merge_ratio: float = 0.0,
                 split_ratio: float = 0.0,
                 seed: int = 0) -> None:
        for name, value in (('merge_ratio', merge_ratio),
                            ('split_ratio', split_ratio)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'OracleClusterer: {name} must be in [0, 1], '
                                 f'got {value}')
        if merge_ratio + split_ratio > 1.0:
            raise ValueError('OracleClusterer: merge_ratio + split_ratio must '
                             f'be <= 1, got {merge_ratio} + {split_ratio}')
        self.merge_ratio = merge_ratio
        self.split_ratio = split_ratio
        self.seed = seed
        self.calls = 0

    def __repr__(self) -> str:
        return (f'OracleClusterer(merge_ratio={self.merge_ratio}, '
                f'split_ratio={self.split_ratio}, seed={self.seed})')

    def cluster(self, distance: Optional[DistanceMatrix],
                context: LabelingContext) -> np.ndarray:
        """Labels ``(N,)`` from ``context.true_ids`` (``distance`` unused).

        Raises:
            ValueError: If the true ids are missing.
        """
        true_ids = context.true_ids
        if true_ids is None:
            raise ValueError('OracleClusterer needs the true ids of the '
                             'training set (the dataset has none?).')
        rng = np.random.default_rng([self.seed, self.calls])
        self.calls += 1
        labels = relabel_contiguous(np.asarray(true_ids)).copy()
        ids = np.unique(labels[labels >= 0])
        ids = ids[rng.permutation(len(ids))]
        num_pairs = int(round(self.merge_ratio * len(ids) / 2))
        num_split = int(round(self.split_ratio * len(ids)))
        merged = ids[:2 * num_pairs]
        for a, b in zip(merged[0::2], merged[1::2]):
            labels[labels == b] = a
        next_id = int(labels.max()) + 1 if len(labels) else 0
        for pid in ids[2 * num_pairs:2 * num_pairs + num_split]:
            members = np.flatnonzero(labels == pid)
            if len(members) < 2:
                continue
            half = rng.permutation(members)[:len(members) // 2]
            labels[half] = next_id
            next_id += 1
        return relabel_contiguous(labels)

    def state_dict(self) -> dict:
        """The number of calls (the noise of the next epoch depends on it)."""
        return dict(calls=self.calls)

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.calls = int(state['calls'])
