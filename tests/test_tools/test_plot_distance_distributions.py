# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/analysis_tools/plot_distance_distributions.py."""
import importlib.util
import json
import os.path as osp
from math import erf, sqrt

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmreid_usl.utils import register_all_modules
from tiny_config import theory_test_cfg, tiny_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
register_all_modules(init_default_scope=False)


def _tool():
    path = osp.join(REPO, 'tools', 'analysis_tools',
                    'plot_distance_distributions.py')
    spec = importlib.util.spec_from_file_location('plot_dd', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


def test_pair_stats_match_dense_reference():
    rng = np.random.default_rng(0)
    feats = torch.nn.functional.normalize(
        torch.from_numpy(rng.standard_normal((57, 8)).astype(np.float32)),
        dim=1)
    pids = rng.integers(1, 9, 57)
    for distance in ('cosine', 'euclidean'):
        stats = TOOL.pair_distance_stats(
            feats, pids, bins=20, distance=distance, chunk_size=10)
        x = feats.double().numpy()
        cos = np.clip(x @ x.T, -1, 1)
        d = (1 - cos) / 2 if distance == 'cosine' else np.sqrt(
            np.clip(2 - 2 * cos, 0, None)) / 2
        iu = np.triu_indices(57, 1)
        same = pids[iu[0]] == pids[iu[1]]
        for key, vals in (('pos', d[iu][same]), ('neg', d[iu][~same])):
            assert stats[key]['count'] == vals.size
            assert stats[key]['mean'] == pytest.approx(vals.mean(), rel=1e-5)
            assert stats[key]['var'] == pytest.approx(vals.var(), rel=1e-4)
            np.testing.assert_array_equal(
                stats[key]['hist'],
                np.histogram(vals, bins=np.linspace(0, 1, 21))[0])
        auto = TOOL.pair_distance_stats(
            feats, pids, bins=20, distance=distance, value_range=None)
        lo, hi = d[iu].min(), d[iu].max()
        assert auto['edges'][0] <= lo < auto['edges'][1]
        assert auto['edges'][-2] < hi <= auto['edges'][-1]
        for key in ('pos', 'neg'):
            assert auto[key]['hist'].sum() == stats[key]['count']


def test_overlaps():
    assert TOOL.gaussian_overlap(0.3, 0.01, 0.3, 0.01) == pytest.approx(
        1.0, abs=1e-6)
    # equal variances: OVL = 2 Phi(-|m1 - m2| / (2 sigma))
    m1, m2, s = 0.2, 0.5, 0.1
    phi = 0.5 * (1 + erf(-abs(m1 - m2) / (2 * s) / sqrt(2)))
    assert TOOL.gaussian_overlap(m1, s**2, m2, s**2) == pytest.approx(
        2 * phi, abs=1e-6)
    stats = dict(
        edges=np.linspace(0, 1, 5),
        pos=dict(hist=np.array([2, 2, 0, 0]), count=4),
        neg=dict(hist=np.array([0, 1, 1, 0]), count=2))
    # densities 2,2,0,0 and 0,2,2,0 (width 0.25): overlap 0.5
    assert TOOL.histogram_overlap(stats) == pytest.approx(0.5)


def test_cli_two_models(tiny_reid_root, tmp_path):
    model = tiny_model()
    cfg = Config(theory_test_cfg(tiny_reid_root))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    from mmreid_usl.models import Theory
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = Theory(encoder=model['encoder'])
        path = str(tmp_path / f'm{seed}.pth')
        torch.save(dict(state_dict=net.state_dict(), meta=dict()), path)
        ckpts.append(path)
    out = str(tmp_path / 'fig.png')
    summary = TOOL.main([
        cfg_path, ckpts[0], cfg_path, ckpts[1], '--titles', 'a', 'b',
        '--out', out, '--out-json',
        str(tmp_path / 's.json'), '--device', 'cpu', '--bins', '30'
    ])
    assert [s['title'] for s in summary] == ['a', 'b']
    for s in summary:
        assert 0 <= s['gaussian_overlap'] <= 1
        assert 0 < s['pos_mean'] < 1 and s['pos_count'] > 0
    assert summary[0]['pos_mean'] != summary[1]['pos_mean']
    assert json.load(open(tmp_path / 's.json'))[1]['title'] == 'b'
    img = mpimg.imread(out)
    assert img.shape[1] > img.shape[0] > 100  # two panels side by side
    with pytest.raises(SystemExit):
        TOOL.parse_args([cfg_path])
