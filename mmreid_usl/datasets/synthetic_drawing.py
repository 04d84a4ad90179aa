# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Drawing one synthetic pedestrian: the part-label map of a pose, then the
rendered image under a camera's conditions."""
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .synthetic_scene import _VIEWS

# Part codes of the label map.
_BG, _SKIN_C, _HAIR_C, _SHIRT, _LEGS, _SHOES, _BAG = range(7)


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
