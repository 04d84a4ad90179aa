# Copyright (c) mmreid_usl contributors. All rights reserved.
"""How :class:`PseudoIdentitySampler` draws the block of one identity.

A strategy is a registered object (``CAMERA_STRATEGIES``, keyed by the
sampler's ``camera_mode`` names) called once per cluster and epoch::

    block = strategy(rng, members, cams, k)

with the sampler's ``np.random.Generator`` ``rng``, the cluster's dataset
indices ``members`` (ascending), their camera ids ``cams`` (None when the
strategy sets ``needs_camids = False``) and ``K``. It returns the block as a
list of dataset indices. A new strategy is a class registered here; the
sampler is not edited (``docs/adding_a_method.md#extension-points``).
"""
from typing import List, Optional

import numpy as np

from mmreid_usl.registry import CAMERA_STRATEGIES


def choice(rng: np.random.Generator, pool: np.ndarray, size: int,
           replace: bool) -> np.ndarray:
    """``size`` elements of ``pool`` drawn by ``rng``."""
    return pool[rng.choice(pool.size, size=size, replace=replace)]


class BaseCameraStrategy:
    """Draws one identity's block of (at most) ``K`` dataset indices."""

    #: Whether the sampler must read the dataset's camera ids.
    needs_camids: bool = True

    def __call__(self, rng: np.random.Generator, members: np.ndarray,
                 cams: Optional[np.ndarray], k: int) -> List[int]:
        raise NotImplementedError


@CAMERA_STRATEGIES.register_module('ignore')
class IgnoreCameras(BaseCameraStrategy):
    """RandomIdentitySampler of Theory (GDS's baseline): ``K`` images of the
    cluster, with replacement only if it has fewer than ``K``."""

    needs_camids = False

    def __call__(self, rng, members, cams, k):
        return choice(rng, members, k, members.size < k).tolist()


@CAMERA_STRATEGIES.register_module('prefer_other')
class PreferOtherCamera(BaseCameraStrategy):
    """RandomMultipleGallerySampler of Cluster Contrast / DCMIP.

    Emit a random anchor ``a``; let ``S`` be the cluster's images from a
    camera other than ``a``'s. If ``S`` is non-empty emit ``K-1`` images of
    ``S``, without replacement iff ``|S| >= K`` (the threshold is K, not
    K-1). Otherwise let ``S'`` be the other images of the cluster; if empty
    emit only the anchor, else ``K-1`` images of ``S'`` (without replacement
    iff ``|S'| >= K``). Blocks have ``K`` images except for singleton
    clusters (1 image), exactly as in the original code.
    """

    def __call__(self, rng, members, cams, k):
        a = int(rng.integers(members.size))
        block = [int(members[a])]
        others = members[cams != cams[a]]
        if others.size == 0:
            others = np.delete(members, a)
        if others.size > 0 and k > 1:
            block += choice(rng, others, k - 1, others.size < k).tolist()
        return block


@CAMERA_STRATEGIES.register_module('more_camera')
class MoreCamera(BaseCameraStrategy):
    """ICE's MoreCameraSampler: one random image per camera of the cluster.

    If that gives ``>= K`` keep ``K`` of them at random; otherwise top up
    from the remaining images (without replacement if enough remain, with
    replacement if not; from the per-camera picks with replacement if none
    remain). Always ``K``.
    """

    def __call__(self, rng, members, cams, k):
        picks = np.array([
            choice(rng, members[cams == c], 1, False)[0]
            for c in np.unique(cams)
        ])
        if picks.size >= k:
            return choice(rng, picks, k, False).tolist()
        rest = np.setdiff1d(members, picks)
        need = k - picks.size
        if rest.size > 0:
            extra = choice(rng, rest, need, rest.size < need)
        else:
            extra = choice(rng, picks, need, True)
        return picks.tolist() + extra.tolist()


def build_camera_strategy(camera_mode) -> BaseCameraStrategy:
    """A strategy from its registry key, a config dict or an instance.

    Raises:
        ValueError: An unknown ``camera_mode`` name.
    """
    if isinstance(camera_mode, BaseCameraStrategy):
        return camera_mode
    if isinstance(camera_mode, dict):
        return CAMERA_STRATEGIES.build(camera_mode)
    if CAMERA_STRATEGIES.get(camera_mode) is None:
        raise ValueError(
            'camera_mode must be one of '
            f'{tuple(CAMERA_STRATEGIES.module_dict)}, got {camera_mode!r}.')
    return CAMERA_STRATEGIES.build(dict(type=camera_mode))
