# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The scene of the synthetic pedestrians: palettes, identities (clothing
attributes, look-alike groups) and cameras (imaging conditions) of both
domains, drawn from the generator's random stream."""
from typing import List

import numpy as np

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


#: Domain B's conditions: (low, high) of a uniform draw. The scene, its
#: bands, its ground strip and the haze are drawn once for the domain; the
#: rest once per camera, with camera-to-camera ranges close to domain A's,
#: so that, as in A, the camera does not decide who looks alike.
_DOMAIN_B = dict(
    tint=(0.5, 1.0),
    band_period=(6, 16),
    band_amplitude=(10, 25),
    horizon=(0.8, 0.92),
    ground=(0.4, 0.7),
    haze=(0.15, 0.3),
    haze_color=(110, 170))
_CAMERA_B = dict(
    gain=(0.8, 1.15),
    cast=(0.94, 1.06),
    offset=(-8, 8),
    background=(-8, 8),
    gradient=(-20, 20),
    blur=(0.8, 1.6),
    noise=(3, 8),
    scale=(0.78, 0.92),
    shift=(-5, 5))


def _sample_cameras_b(rng: np.random.Generator, num_cams: int) -> List[dict]:
    """Imaging conditions of each camera of domain B.

    An outdoor scene instead of A's grey walls, the same for every camera of
    the domain: a coloured background with vertical bands (facades, fences)
    and a ground strip, a haze that pulls every colour towards a grey, more
    blur and noise, smaller and more shifted people. The cameras differ
    from each other about as much as A's do (gain, colour cast, offset,
    background shade, gradient, viewpoint): an earlier draw of a scene per
    camera made the camera the strongest cue, and every cluster
    single-camera.
    """
    def r(table, key, size=None):
        return rng.uniform(*table[key], size)

    scene = _BACKGROUNDS_B[rng.integers(len(_BACKGROUNDS_B))]
    grey = scene.mean()
    base = grey + r(_DOMAIN_B, 'tint') * (scene - grey)
    bands = (float(r(_DOMAIN_B, 'band_period')),
             float(r(_DOMAIN_B, 'band_amplitude')))
    ground = (float(r(_DOMAIN_B, 'horizon')),
              (base * r(_DOMAIN_B, 'ground')).astype(np.float32))
    haze = float(r(_DOMAIN_B, 'haze'))
    haze_color = float(r(_DOMAIN_B, 'haze_color'))
    cams = []
    for _ in range(num_cams):
        cams.append(
            dict(
                gain=float(r(_CAMERA_B, 'gain')),
                cast=r(_CAMERA_B, 'cast', 3).astype(np.float32),
                offset=float(r(_CAMERA_B, 'offset')),
                background=(base + r(_CAMERA_B, 'background', 3)).astype(
                    np.float32),
                gradient=float(r(_CAMERA_B, 'gradient')),
                blur=float(r(_CAMERA_B, 'blur')),
                noise=float(r(_CAMERA_B, 'noise')),
                scale=float(r(_CAMERA_B, 'scale')),
                shift=float(r(_CAMERA_B, 'shift')),
                view=_VIEWS[rng.integers(len(_VIEWS))],
                bands=bands,
                ground=ground,
                haze=haze,
                haze_color=haze_color))
    return cams
