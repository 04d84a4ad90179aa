# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The synthetic renderer's second domain (the zero-download UDA pair).

Domain A is the default and its output is frozen: the digests below were
computed with the renderer before the ``domain`` option existed.
"""
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmreid_usl.datasets import SyntheticPedestrians
from mmreid_usl.datasets.synthetic import (ensure_synthetic_pedestrians,
                                           generate_synthetic_pedestrians,
                                           synthetic_cache_root)
from mmreid_usl.datasets.synthetic_renderer import (DEFAULT_GENERATOR_CFG,
                                                    SyntheticGeneratorConfig)

SPLITS = ('bounding_box_train', 'query', 'bounding_box_test')
SMALL = dict(
    num_train_ids=6,
    num_test_ids=4,
    num_cams=3,
    cams_per_id=(2, 3),
    images_per_cam=(1, 2),
    height=64,
    width=32)
#: sha256 over (split/name, bytes) of every image of
#: generate_synthetic_pedestrians(root, **SMALL), computed on the renderer
#: before domains existed (numpy 1.26 / Pillow 10: the JPEG bytes depend on
#: the library versions, as the renderer's docstring says).
SMALL_A_SHA256 = (
    'a03910cd7d9c8d039c5358431e0ca288a095d4d6e1c64c4e0ab1399756f8f02e')
#: The hash suffix of SMALL's cache folder and its generator.json, before.
SMALL_A_SUFFIX = 'f8add42f'
SMALL_A_MARKER = (
    '{"cams_per_id": [2, 3], "counts": {"gallery": 5, "query": 9, '
    '"train": 23}, "height": 64, "images_per_cam": [1, 2], '
    '"lookalike_group_size": 3, "num_cams": 3, "num_test_ids": 4, '
    '"num_train_ids": 6, "seed": 0, "width": 32}')


def _digest(root):
    h = hashlib.sha256()
    for d in SPLITS:
        for name in sorted(os.listdir(osp.join(root, d))):
            h.update(f'{d}/{name}'.encode())
            with open(osp.join(root, d, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def _images(root):
    return {
        f'{d}/{name}': np.asarray(Image.open(osp.join(root, d, name)),
                                  np.float32)
        for d in SPLITS for name in sorted(os.listdir(osp.join(root, d)))
    }


def _stats(img):
    """Per-image contrast (std of the pixels, mean over RGB) and the mean
    saturation (max - min over RGB) of the central region, where the
    person stands."""
    h, w = img.shape[:2]
    centre = img[h // 4:3 * h // 4, w // 4:3 * w // 4]
    return np.array(
        [img.std((0, 1)).mean(), (centre.max(-1) - centre.min(-1)).mean()])


def test_domain_a_is_unchanged(tmp_path, monkeypatch):
    root = str(tmp_path / 'a')
    generate_synthetic_pedestrians(root, **SMALL)
    if _digest(root) != SMALL_A_SHA256:
        # JPEG encoders differ between Pillow builds: only then compare
        # the decoded pixels with an explicit domain='a' copy
        explicit = str(tmp_path / 'explicit')
        generate_synthetic_pedestrians(explicit, domain='a', **SMALL)
        pytest.fail('domain A output changed (or another Pillow/numpy '
                    'build: recompute SMALL_A_SHA256 on the code before '
                    'any renderer change)')
    generate_synthetic_pedestrians(
        str(tmp_path / 'a2'), domain='a', **SMALL)
    assert _digest(str(tmp_path / 'a2')) == SMALL_A_SHA256
    # the default config and its cache folder are those of before
    assert 'domain' not in DEFAULT_GENERATOR_CFG
    monkeypatch.setenv('MMREID_USL_CACHE', str(tmp_path))
    full = SyntheticGeneratorConfig.from_dict(SMALL).to_dict()
    assert full == SyntheticGeneratorConfig.from_dict(
        dict(SMALL, domain='a')).to_dict()
    assert osp.basename(synthetic_cache_root(full)) == \
        f'synthetic_pedestrians_v1_{SMALL_A_SUFFIX}'
    assert osp.basename(synthetic_cache_root(DEFAULT_GENERATOR_CFG)) == \
        'synthetic_pedestrians_v1'
    marker_root = ensure_synthetic_pedestrians(str(tmp_path / 'm'), **full)
    with open(osp.join(marker_root, 'generator.json')) as f:
        assert f.read() == SMALL_A_MARKER


def test_domain_b_is_deterministic_and_disjoint(tmp_path, monkeypatch):
    b1, b2 = str(tmp_path / 'b1'), str(tmp_path / 'b2')
    counts = generate_synthetic_pedestrians(b1, domain='b', **SMALL)
    generate_synthetic_pedestrians(b2, domain='b', **SMALL)
    assert _digest(b1) == _digest(b2)
    assert sum(counts.values()) == sum(
        len(os.listdir(osp.join(b1, d))) for d in SPLITS)
    # another seed, another dataset
    b3 = str(tmp_path / 'b3')
    generate_synthetic_pedestrians(b3, domain='b', **dict(SMALL, seed=1))
    assert _digest(b3) != _digest(b1)
    # own cache folder; identities disjoint from domain A's (raw ids 5001+)
    monkeypatch.setenv('MMREID_USL_CACHE', str(tmp_path / 'cache'))
    cfg_b = dict(SMALL, domain='b')
    train_b = SyntheticPedestrians(generator_cfg=cfg_b)
    train_a = SyntheticPedestrians(generator_cfg=SMALL)
    assert train_b.data_root != train_a.data_root
    assert train_b.generator_cfg['domain'] == 'b'
    raw_b = {int(n.split('_')[0])
             for n in os.listdir(osp.join(train_b.data_root, SPLITS[0]))}
    assert raw_b == set(range(5001, 5007))
    query_b = SyntheticPedestrians(split='query', generator_cfg=cfg_b)
    assert set(query_b.get_pids()) == set(range(5007, 5011))
    with pytest.raises(ValueError, match='domain'):
        SyntheticGeneratorConfig(domain='c')


def test_domain_b_looks_different(tmp_path):
    """Domain B's haze lowers contrast and the saturation of the people on
    every seed, enough for a nearest-centroid classifier on those two
    statistics (fitted on seed 0) to tell the domains apart on other
    seeds."""
    seeds = (0, 1, 2)
    feats = {}
    for domain in ('a', 'b'):
        for seed in seeds:
            root = str(tmp_path / f'{domain}{seed}')
            generate_synthetic_pedestrians(
                root, domain=domain, **dict(SMALL, seed=seed))
            feats[domain, seed] = np.stack(
                [_stats(img) for img in _images(root).values()])
    for seed_a in seeds:
        for seed_b in seeds:
            mean_a = feats['a', seed_a].mean(0)
            mean_b = feats['b', seed_b].mean(0)
            assert mean_b[0] < mean_a[0], (seed_a, seed_b)
            assert mean_b[1] < 0.75 * mean_a[1], (seed_a, seed_b)
    centroids = {d: feats[d, 0].mean(0) for d in ('a', 'b')}
    scale = np.concatenate([feats['a', 0], feats['b', 0]]).std(0)
    correct = total = 0
    for domain in ('a', 'b'):
        for seed in seeds[1:]:
            for x in feats[domain, seed]:
                dist = {
                    d: np.linalg.norm((x - c) / scale)
                    for d, c in centroids.items()
                }
                correct += min(dist, key=dist.get) == domain
                total += 1
    assert correct / total >= 0.85, correct / total
