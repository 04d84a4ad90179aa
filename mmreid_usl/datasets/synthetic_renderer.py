# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Renderer of the synthetic pedestrian ReID dataset.

Hand-written (no library draws ReID-style pedestrians). Each identity is a
set of clothing attributes; each camera a set of imaging conditions; each
image a random pose and placement. Look-alike groups of identities share
their main colours so that colour statistics alone do not solve the task.

Two DOMAINS share the drawing code: ``'a'`` (the default, the quick
start's dataset) and ``'b'``, a second domain with its own identities,
palette, cameras, backgrounds, haze and blur, so that the pair makes a
zero-download unsupervised domain adaptation task (A labelled source -> B
unlabelled target, ``configs/gds/*_synthetic-a*.py``).

The generator's arguments and their defaults live in one place,
:class:`SyntheticGeneratorConfig`. The output is a deterministic function of
the configuration (same bytes for the same numpy/Pillow versions); bump
:data:`SYNTHETIC_VERSION` whenever a change alters it, so that cached copies
(:class:`~mmreid_usl.datasets.SyntheticPedestrians`) are regenerated.
"""
import dataclasses
import os
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

from .synthetic_drawing import _render
from .synthetic_scene import (_ID_OFFSET, _PALETTE, _PALETTE_B,
                              _sample_cameras, _sample_cameras_b,
                              _sample_identities)

#: Bump when the generator's output changes; part of the cache folder name.
SYNTHETIC_VERSION = 'v1'
#: The domains of the generator (``SyntheticGeneratorConfig.domain``).
DOMAINS = ('a', 'b')


@dataclasses.dataclass(frozen=True)
class SyntheticGeneratorConfig:
    """Arguments of :func:`generate_synthetic_pedestrians`, with defaults.

    Attributes:
        num_train_ids (int): Identities of ``bounding_box_train/``
            (raw ids ``1..num_train_ids``). Defaults to 100.
        num_test_ids (int): Identities of the test split (the next ids).
            Defaults to 50.
        num_cams (int): Cameras (at least 2). Defaults to 4.
        cams_per_id (tuple[int, int]): Inclusive range of the number of
            cameras that see an identity (at least 2, so that every test
            identity has a cross-camera match). Defaults to ``(3, 4)``.
        images_per_cam (tuple[int, int]): Inclusive range of the images of
            an identity per camera. Defaults to ``(2, 4)``.
        lookalike_group_size (int): Identities per look-alike group (shared
            shirt and trousers colours). Defaults to 3.
        height (int): Image height in pixels. Defaults to 128.
        width (int): Image width in pixels. Defaults to 64.
        seed (int): Seed of the whole dataset. Defaults to 0.
        domain (str): ``'a'`` or ``'b'`` (see
            :func:`generate_synthetic_pedestrians`). Defaults to ``'a'``.
            Left out of :meth:`to_dict` when ``'a'``, so that the cache
            folders and marker files of domain A are those of before the
            option existed.
    """

    num_train_ids: int = 100
    num_test_ids: int = 50
    num_cams: int = 4
    cams_per_id: Tuple[int, int] = (3, 4)
    images_per_cam: Tuple[int, int] = (2, 4)
    lookalike_group_size: int = 3
    height: int = 128
    width: int = 64
    seed: int = 0
    domain: str = 'a'

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f'domain must be one of {DOMAINS}, '
                             f'got {self.domain!r}.')
        for key in ('cams_per_id', 'images_per_cam'):
            object.__setattr__(self, key, tuple(getattr(self, key)))
        lo, hi = self.cams_per_id
        if self.num_cams < 2 or not 2 <= lo <= hi <= self.num_cams:
            raise ValueError('need 2 <= cams_per_id[0] <= cams_per_id[1] <= '
                             f'num_cams, got {self.cams_per_id} and '
                             f'{self.num_cams}.')

    @classmethod
    def from_dict(cls,
                  overrides: Optional[Dict] = None
                  ) -> 'SyntheticGeneratorConfig':
        """The defaults updated with ``overrides``.

        Raises:
            ValueError: A key is not an argument of the generator, or the
                camera ranges are inconsistent.
        """
        overrides = dict(overrides or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = set(overrides) - set(valid)
        if unknown:
            raise ValueError(f'unknown generator_cfg keys {sorted(unknown)}; '
                             f'valid keys: {sorted(valid)}.')
        return cls(**overrides)

    def to_dict(self) -> Dict:
        """All arguments as a plain dict (tuples kept).

        Arguments added after :data:`SYNTHETIC_VERSION` ``'v1'`` (only
        ``domain``) are left out while they hold their default, so the
        dict, and with it the cache folder name and the ``generator.json``
        marker, of every configuration that existed before is unchanged.
        """
        out = dataclasses.asdict(self)
        for key, default in _LATER_DEFAULTS.items():
            if out[key] == default:
                del out[key]
        return out


#: Arguments added after v1 and their defaults (left out of ``to_dict``).
_LATER_DEFAULTS = dict(domain='a')

#: The default configuration as a dict (e.g. to compare or hash against).
DEFAULT_GENERATOR_CFG: Dict = SyntheticGeneratorConfig().to_dict()


def generate_synthetic_pedestrians(root: str,
                                   **generator_cfg) -> Dict[str, int]:
    """Write a synthetic pedestrian ReID dataset in the Market-1501 layout.

    Identities ``1..num_train_ids`` go to ``bounding_box_train/``, the next
    ``num_test_ids`` to the test split. Each identity is seen by a random
    subset of ``cams_per_id`` (inclusive range) of the ``num_cams`` cameras,
    with ``images_per_cam`` (inclusive range) images per camera. As in the
    project's CUHK03 split
    (``docs/algorithms/common.md#cuhk03-detected-project-split``), the first
    image of each camera of a test identity goes to ``query/`` and the
    others to ``bounding_box_test/``. Names are Market-style,
    ``PPPP_cCs1_FFFFFF_00.jpg``, so the default Market pattern parses them.

    Content: each identity has a shirt colour, trousers colour, a shirt
    pattern (plain / horizontal or vertical stripes / checks), skin and hair
    tone, hair length, shorts or not, a bag (none / backpack / handbag) and
    a body build; identities come in look-alike groups of
    ``lookalike_group_size`` that share shirt and trousers colours. Each
    camera has its own gain, colour cast, offset, background, blur, noise,
    scale, horizontal shift and dominant view (front / back / side, which
    changes what is visible: face or hair, backpack or straps); each image
    adds pose (stride, arm swing), placement and lighting jitter and a random
    horizontal flip.

    The output is a deterministic function of the arguments (same bytes for
    the same numpy/Pillow versions). ``root`` is written directly; use
    :func:`~mmreid_usl.datasets.synthetic.ensure_synthetic_pedestrians` for
    atomic creation.

    Args:
        root (str): Output folder.
        **generator_cfg: Overrides of :class:`SyntheticGeneratorConfig`.

    Returns:
        dict: Image counts ``train``, ``query``, ``gallery``.

    Raises:
        ValueError: Unknown keys or inconsistent camera ranges.
    """
    cfg = SyntheticGeneratorConfig.from_dict(generator_cfg)
    num_train_ids, num_cams = cfg.num_train_ids, cfg.num_cams
    cams_per_id, images_per_cam = cfg.cams_per_id, cfg.images_per_cam
    height, width = cfg.height, cfg.width
    if cfg.domain == 'a':
        rng = np.random.default_rng(cfg.seed)
        palette, sample_cameras = _PALETTE, _sample_cameras
    else:  # a random stream of its own: other identities and cameras
        rng = np.random.default_rng([cfg.seed, 0xB])
        palette, sample_cameras = _PALETTE_B, _sample_cameras_b
    idents = _sample_identities(rng, num_train_ids + cfg.num_test_ids,
                                cfg.lookalike_group_size, palette)
    # Shuffle so that look-alike groups straddle the train/test split too.
    idents = [idents[i] for i in rng.permutation(len(idents))]
    cams = sample_cameras(rng, num_cams)
    dirs = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    for d in dirs.values():
        os.makedirs(osp.join(root, d), exist_ok=True)
    frame = [0] * num_cams
    counts = dict(train=0, query=0, gallery=0)
    for index, ident in enumerate(idents):
        pid = _ID_OFFSET[cfg.domain] + index + 1
        is_train = index < num_train_ids
        n_cams = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
        for c in sorted(rng.choice(num_cams, n_cams, replace=False)):
            n_img = int(rng.integers(images_per_cam[0], images_per_cam[1] + 1))
            for k in range(n_img):
                frame[c] += 1
                img = _render(ident, cams[c], rng, height, width)
                split = 'train' if is_train else (
                    'query' if k == 0 else 'gallery')
                name = f'{pid:04d}_c{c + 1}s1_{frame[c]:06d}_00.jpg'
                Image.fromarray(img).save(
                    osp.join(root, dirs[split], name), quality=90)
                counts[split] += 1
    return counts
