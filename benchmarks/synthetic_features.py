# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Synthetic ReID features with identity structure (issue 5 distribution).

``unit(x) = x / ||x||``. Identities come in look-alike groups of 5; the centre
of id ``i`` is ``unit(0.6 * g[i // 5] + 0.8 * o[i])`` with ``g``, ``o`` random
unit vectors. Per-id image counts are ``2 +`` a multinomial draw of the
remaining images with Dirichlet(2.0) weights. Cameras are uniform over
``num_cams``, each camera a random unit direction ``c``; a sample is
``unit(centre + 0.5 * c[cam] + noise)`` with isotropic Gaussian noise of norm
about ``noise_norm`` (per-dimension std ``noise_norm / sqrt(d)``).
"""
from typing import Tuple

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic_features(num_samples: int,
                       num_ids: int,
                       dim: int = 2048,
                       num_cams: int = 6,
                       noise_norm: float = 1.4,
                       group_size: int = 5,
                       seed: int = 0,
                       chunk: int = 4096
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw L2-normalised features with identity and camera structure.

    Args:
        num_samples (int): Number of images N (>= 2 * num_ids).
        num_ids (int): Number of identities K.
        dim (int): Feature dimension. Defaults to 2048.
        num_cams (int): Number of cameras. Defaults to 6.
        noise_norm (float): Expected norm of the isotropic noise. Defaults to
            1.4 (clustering); the evaluation benchmark uses 3.5.
        group_size (int): Size of the look-alike id groups. Defaults to 5.
        seed (int): Random seed. Defaults to 0.
        chunk (int): Rows generated at a time (bounds temporary memory).

    Returns:
        tuple: ``feats`` float32 (N, dim), ``pids`` int64 (N,), ``camids``
        int64 (N,), in a random order.
    """
    assert num_samples >= 2 * num_ids, 'need at least 2 images per id'
    rng = np.random.default_rng(seed)
    num_groups = (num_ids + group_size - 1) // group_size
    g = _unit(rng.standard_normal((num_groups, dim), dtype=np.float32))
    o = _unit(rng.standard_normal((num_ids, dim), dtype=np.float32))
    centres = _unit(0.6 * g[np.arange(num_ids) // group_size] + 0.8 * o)
    cam_dirs = _unit(rng.standard_normal((num_cams, dim), dtype=np.float32))
    weights = rng.dirichlet(np.full(num_ids, 2.0))
    counts = 2 + rng.multinomial(num_samples - 2 * num_ids, weights)
    pids = np.repeat(np.arange(num_ids), counts)
    pids = pids[rng.permutation(num_samples)]
    camids = rng.integers(0, num_cams, num_samples)
    feats = np.empty((num_samples, dim), dtype=np.float32)
    std = np.float32(noise_norm / np.sqrt(dim))
    for s in range(0, num_samples, chunk):
        e = min(s + chunk, num_samples)
        x = rng.standard_normal((e - s, dim), dtype=np.float32)
        x *= std
        x += centres[pids[s:e]]
        x += 0.5 * cam_dirs[camids[s:e]]
        feats[s:e] = _unit(x)
    return feats, pids.astype(np.int64), camids.astype(np.int64)
