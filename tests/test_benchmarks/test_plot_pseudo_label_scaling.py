# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/plot_pseudo_label_scaling.py`` draws the measured rows and
the cost model's curves."""
import os.path as osp

import numpy as np
from script_loader import load_script


def test_plot_has_the_measured_rows_and_the_model_curves(tmp_path):
    plot = load_script('benchmarks/plot_pseudo_label_scaling.py', '_plps')
    out = str(tmp_path / 'scaling.png')
    res = plot.main(['--out', out])
    assert osp.getsize(out) > 10_000
    # idle-machine, fitted, end-to-end rows only (the loaded row is left out)
    assert {(p['n'], p['knn']) for p in res['points']} >= {
        (200000, 'exact'), (200000, 'ivf'), (1000000, 'ivf')}
    assert all(p['total_s'] < 500 for p in res['points'])
    n = np.array(res['n'])
    at_1m = int(np.argmin(abs(n - 1e6)))
    exact = res['curves']['exact kNN (model)']
    ivf16 = res['curves']['IVF nprobe 16 (model)']
    assert exact[at_1m] > 5 * ivf16[at_1m]
    # eight GPUs beat one at every N of the projection
    for dim in (256, 2048):
        one, eight = (res['curves'][f'h100 {dim}-d W={w}'] for w in (1, 8))
        assert all(b < a for a, b in zip(one, eight))
