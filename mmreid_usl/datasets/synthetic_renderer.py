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
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

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

# Clothing palette (RGB); identities draw from it with a small jitter, so
# different identities often share colours.
_PALETTE = np.array(
    [[200, 30, 30], [30, 60, 170], [30, 130, 50], [230, 200, 40],
     [240, 240, 235], [25, 25, 25], [120, 120, 125], [120, 70, 30],
     [230, 120, 170], [100, 40, 140], [240, 130, 30], [60, 170, 190],
     [190, 170, 130], [20, 40, 80]],
    dtype=np.float32)
_SKIN = np.array([[255, 220, 185], [235, 190, 150], [200, 150, 110],
                  [150, 100, 70], [95, 65, 45]],
                 dtype=np.float32)
_HAIR = np.array([[20, 15, 10], [70, 45, 25], [140, 100, 50], [200, 180, 120],
                  [150, 150, 150]],
                 dtype=np.float32)
# Domain B's clothing palette: muted mid-tones (olive, slate, terracotta,
# mauve, ...), none of A's saturated primaries, black or white, and closer
# to each other than A's, so that A's colour features separate them less
# well.
_PALETTE_B = np.array(
    [[150, 85, 95], [95, 110, 60], [65, 100, 125], [200, 165, 115],
     [165, 185, 205], [95, 55, 65], [205, 205, 150], [105, 105, 165],
     [55, 85, 65], [180, 110, 80], [140, 150, 150], [215, 180, 190],
     [130, 115, 90], [75, 75, 95]],
    dtype=np.float32)
# Domain B's scene colours (outdoor: foliage, brick, sky, asphalt, sand).
_BACKGROUNDS_B = np.array(
    [[80, 120, 70], [150, 85, 70], [150, 175, 200], [90, 90, 95],
     [185, 170, 130]],
    dtype=np.float32)
#: Raw ids of a domain start after its offset: B's ids (5001, ...) are
#: disjoint from A's (1, ...) as in a real pair of datasets.
_ID_OFFSET = dict(a=0, b=5000)
_PATTERNS = ('plain', 'hstripes', 'vstripes', 'checks')
_BAGS = ('none', 'backpack', 'handbag')
_VIEWS = ('front', 'back', 'side')
# Part codes of the label map.
_BG, _SKIN_C, _HAIR_C, _SHIRT, _LEGS, _SHOES, _BAG = range(7)


def _sample_identities(rng: np.random.Generator,
                       num_ids: int,
                       group_size: int,
                       palette: np.ndarray = _PALETTE) -> List[dict]:
    """Attributes of ``num_ids`` identities, in look-alike groups."""
    ids = []
    while len(ids) < num_ids:
        shirt, legs = rng.choice(len(palette), 2, replace=False)
        for _ in range(min(group_size, num_ids - len(ids))):
            jitter = rng.normal(0, 12, (2, 3))
            ids.append(
                dict(
                    shirt=np.clip(palette[shirt] + jitter[0], 0, 255),
                    legs=np.clip(palette[legs] + jitter[1], 0, 255),
                    pattern=_PATTERNS[rng.integers(len(_PATTERNS))],
                    pattern_color=palette[rng.integers(len(palette))],
                    period=int(rng.integers(4, 9)),
                    skin=_SKIN[rng.integers(len(_SKIN))],
                    hair=_HAIR[rng.integers(len(_HAIR))],
                    long_hair=bool(rng.random() < 0.35),
                    shorts=bool(rng.random() < 0.25),
                    bag=_BAGS[rng.integers(len(_BAGS))],
                    bag_color=palette[rng.integers(len(palette))],
                    build=float(rng.uniform(0.85, 1.15)),
                    tall=float(rng.uniform(0.9, 1.04))))
    return ids


def _sample_cameras(rng: np.random.Generator, num_cams: int) -> List[dict]:
    """Imaging conditions of each camera."""
    cams = []
    for _ in range(num_cams):
        cams.append(
            dict(
                gain=float(rng.uniform(0.8, 1.15)),
                cast=rng.uniform(0.94, 1.06, 3).astype(np.float32),
                offset=float(rng.uniform(-8, 8)),
                background=(rng.uniform(100, 160) +
                            rng.uniform(-8, 8, 3)).astype(np.float32),
                gradient=float(rng.uniform(-20, 20)),
                blur=float(rng.uniform(0.0, 1.2)),
                noise=float(rng.uniform(2, 8)),
                scale=float(rng.uniform(0.85, 1.0)),
                shift=float(rng.uniform(-4, 4)),
                view=_VIEWS[rng.integers(len(_VIEWS))]))
    return cams


#: Domain B's camera conditions: (low, high) of a uniform draw per camera.
_CAMERA_B = dict(
    gain=(0.75, 1.2),
    cast=(0.85, 1.15),
    offset=(-12, 12),
    tint=(0.5, 1.0),
    background=(-15, 15),
    gradient=(-35, 35),
    blur=(1.0, 2.0),
    noise=(4, 10),
    scale=(0.75, 0.92),
    shift=(-6, 6),
    band_period=(6, 16),
    band_amplitude=(10, 25),
    horizon=(0.8, 0.92),
    ground=(0.4, 0.7),
    haze=(0.15, 0.3),
    haze_color=(110, 170))


def _sample_cameras_b(rng: np.random.Generator, num_cams: int) -> List[dict]:
    """Imaging conditions of each camera of domain B.

    Outdoor scenes instead of A's grey walls: a coloured background with
    vertical bands (facades, fences) and a ground strip; stronger gain and
    colour-cast differences between cameras, a haze that pulls every colour
    towards a grey, more blur and noise, smaller and more shifted people.
    """
    r = {k: lambda size=None, k=k: rng.uniform(*_CAMERA_B[k], size)
         for k in _CAMERA_B}
    cams = []
    for _ in range(num_cams):
        scene = _BACKGROUNDS_B[rng.integers(len(_BACKGROUNDS_B))]
        grey = scene.mean()
        base = grey + r['tint']() * (scene - grey)
        cams.append(
            dict(
                gain=float(r['gain']()),
                cast=r['cast'](3).astype(np.float32),
                offset=float(r['offset']()),
                background=(base + r['background'](3)).astype(np.float32),
                gradient=float(r['gradient']()),
                blur=float(r['blur']()),
                noise=float(r['noise']()),
                scale=float(r['scale']()),
                shift=float(r['shift']()),
                view=_VIEWS[rng.integers(len(_VIEWS))],
                bands=(float(r['band_period']()),
                       float(r['band_amplitude']())),
                ground=(float(r['horizon']()),
                        (base * r['ground']()).astype(np.float32)),
                haze=float(r['haze']()),
                haze_color=float(r['haze_color']())))
    return cams


def _draw_labels(ident: dict, cam: dict, rng: np.random.Generator, height: int,
                 width: int) -> Tuple[np.ndarray, dict]:
    """Label map of one pedestrian; returns (labels HxW uint8, geometry)."""
    canvas = Image.new('L', (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    scale = cam['scale'] * ident['tall'] * rng.uniform(0.95, 1.05)
    ph = 0.9 * height * scale
    cx = width / 2 + cam['shift'] + rng.uniform(-3, 3)
    top = height - 2 - ph + rng.uniform(-2, 2)
    view = cam['view'] if rng.random() < 0.8 else _VIEWS[rng.integers(3)]
    side = view == 'side'
    tw = 0.30 * ph * ident['build'] * (0.7 if side else 1.0) / 2
    y = lambda f: top + f * ph  # noqa: E731
    # Legs (trousers), walking stride, shoes.
    stride = rng.uniform(0.0, 0.12) * ph * (1.6 if side else 1.0)
    lw = 0.11 * ph * ident['build']
    hip, knee_y, foot = y(0.52), y(0.75), y(0.96)
    for sgn in (-1, 1):
        x0 = cx + sgn * (tw - lw / 2) * (0.4 if side else 0.8)
        xf = x0 + sgn * stride / 2
        draw.polygon([(x0 - lw / 2, hip), (x0 + lw / 2, hip),
                      (xf + lw / 2, foot), (xf - lw / 2, foot)],
                     fill=_LEGS)
        draw.rectangle([xf - lw / 2 - 1, foot, xf + lw / 2 + 1,
                        y(1.0)],
                       fill=_SHOES)
        if ident['shorts']:
            draw.polygon([((x0 + xf) / 2 - lw / 2, knee_y),
                          ((x0 + xf) / 2 + lw / 2, knee_y),
                          (xf + lw / 2, foot), (xf - lw / 2, foot)],
                         fill=_SKIN_C)
    # Torso and arms.
    draw.rectangle([cx - tw, y(0.15), cx + tw, y(0.54)], fill=_SHIRT)
    aw = 0.07 * ph
    swing = rng.uniform(-0.06, 0.06) * ph
    for sgn in ((1, ) if side else (-1, 1)):
        ax = cx + sgn * (tw + aw / 2) if not side else cx + swing / 2
        draw.polygon([(ax - aw / 2, y(0.16)), (ax + aw / 2, y(0.16)),
                      (ax + aw / 2 + sgn * swing, y(0.50)),
                      (ax - aw / 2 + sgn * swing, y(0.50))],
                     fill=_SHIRT)
        draw.ellipse([
            ax + sgn * swing - aw / 2,
            y(0.49), ax + sgn * swing + aw / 2,
            y(0.55)
        ],
                     fill=_SKIN_C)
    # Head and hair.
    hr = 0.065 * ph
    hy = y(0.075)
    draw.ellipse([cx - hr, hy - hr, cx + hr, hy + hr],
                 fill=_HAIR_C if view == 'back' else _SKIN_C)
    draw.chord([cx - hr, hy - hr * 1.1, cx + hr, hy + hr * 0.6],
               180,
               360,
               fill=_HAIR_C)
    if ident['long_hair']:
        draw.rectangle([cx - hr, hy, cx + hr, y(0.22)], fill=_HAIR_C)
        if view == 'front':
            draw.ellipse(
                [cx - hr * 0.7, hy - hr * 0.5, cx + hr * 0.7, hy + hr * 0.9],
                fill=_SKIN_C)
    # Bag.
    if ident['bag'] == 'backpack':
        if view == 'back':
            draw.rectangle(
                [cx - tw * 0.7, y(0.18), cx + tw * 0.7,
                 y(0.45)], fill=_BAG)
        elif view == 'side':
            draw.rectangle([cx - tw - 0.08 * ph,
                            y(0.18), cx - tw,
                            y(0.44)],
                           fill=_BAG)
        else:  # straps only
            for sgn in (-1, 1):
                draw.line([(cx + sgn * tw * 0.6, y(0.15)),
                           (cx + sgn * tw * 0.6, y(0.35))],
                          fill=_BAG,
                          width=max(1, int(0.03 * ph)))
    elif ident['bag'] == 'handbag':
        bx = cx + tw + aw * 0.6
        draw.rectangle(
            [bx - 0.05 * ph, y(0.46), bx + 0.06 * ph,
             y(0.60)], fill=_BAG)
    geom = dict(torso_top=y(0.15), torso_left=cx - tw, ph=ph)
    return np.asarray(canvas), geom


def _render(ident: dict, cam: dict, rng: np.random.Generator, height: int,
            width: int) -> np.ndarray:
    """One RGB uint8 image of ``ident`` seen by ``cam``."""
    labels, geom = _draw_labels(ident, cam, rng, height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Background: camera colour, vertical gradient, low-frequency texture.
    img = np.empty((height, width, 3), np.float32)
    img[:] = cam['background']
    img += (yy / height - 0.5)[..., None] * cam['gradient']
    coarse = rng.normal(0, 6, (height // 16 + 1, width // 16 + 1, 1)) + \
        rng.normal(0, 2, (height // 16 + 1, width // 16 + 1, 3))
    img += np.kron(coarse, np.ones((16, 16, 1)))[:height, :width]
    if 'bands' in cam:  # domain B: vertical bands and a ground strip
        period, amplitude = cam['bands']
        phase = rng.uniform(0, 2 * np.pi)
        img += amplitude * np.sign(
            np.sin(2 * np.pi * xx / period + phase))[..., None]
        horizon, ground = cam['ground']
        img[yy >= horizon * height] = ground + rng.normal(0, 4, 3)
    colours = {
        _SKIN_C: ident['skin'],
        _HAIR_C: ident['hair'],
        _SHIRT: ident['shirt'],
        _LEGS: ident['legs'],
        _SHOES: np.array([30, 28, 25], np.float32),
        _BAG: ident['bag_color']
    }
    for code, colour in colours.items():
        img[labels == code] = colour
    # Shirt pattern, in torso coordinates (moves and scales with the body).
    if ident['pattern'] != 'plain':
        period = ident['period'] * geom['ph'] / 100
        u = (xx - geom['torso_left']) / period
        v = (yy - geom['torso_top']) / period
        hs, vs = (v % 2) < 1, (u % 2) < 1
        on = {
            'hstripes': hs,
            'vstripes': vs,
            'checks': hs ^ vs
        }[ident['pattern']]
        img[(labels == _SHIRT) & on] = ident['pattern_color']
    # Per-image clothing brightness (pose / shading change).
    person = labels != _BG
    img[person] *= rng.uniform(0.9, 1.1)
    if 'haze' in cam:  # domain B: contrast and saturation lost to haze
        img = (1 - cam['haze']) * img + cam['haze'] * cam['haze_color']
    # Camera lighting: gain, colour cast, offset, per-image flicker.
    img = img * cam['gain'] * cam['cast'] * rng.uniform(0.9, 1.1)
    img += cam['offset']
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    radius = cam['blur'] * rng.uniform(0.7, 1.3)
    if radius > 0.2:
        pil = pil.filter(ImageFilter.GaussianBlur(radius))
    out = np.asarray(pil, np.float32)
    out += rng.normal(0, cam['noise'], out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


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
