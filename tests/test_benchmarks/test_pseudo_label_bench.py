# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/pseudo_label_bench.py``: the defaults of the approximate
path and one small end-to-end call printing the keys the checks read."""
import json

import pytest
from script_loader import load_script

pytest.importorskip('faiss')


def _bench():
    return load_script('benchmarks/pseudo_label_bench.py', '_plb')


def test_defaults_follow_the_training_labeler():
    parse = _bench().parse_args
    ivf = parse(['--n', '100', '--ids', '10', '--knn', 'ivf'])
    # the labeler's radius and camera-centred cells, as in training
    assert ivf.max_distance == pytest.approx(0.601)
    assert ivf.camera_centred is True and ivf.refine_iters is None
    assert parse(['--n', '100', '--ids', '10', '--knn', 'ivf',
                  '--no-camera-centred']).camera_centred is False
    exact = parse(['--n', '100', '--ids', '10', '--eps', '0.5',
                   '--max-distance', '1.0'])
    assert exact.camera_centred is False and exact.max_distance == 1.0
    assert parse(['--n', '100', '--ids', '10',
                  '--eps', '0.5']).max_distance == pytest.approx(0.501)


def test_ivf_run_prints_the_checked_keys(capsys):
    _bench().main(['--n', '3000', '--ids', '150', '--dim', '64',
                   '--noise-norm', '0.8',
                   '--knn', 'ivf', '--nprobe', '4', '--refine-iters', '1',
                   '--recall-queries', '200', '--compare-exact'])
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ('total_s', 'peak_rss_gb', 'ari', 'exact_total_s',
                'ari_vs_exact', 'recall_at_k'):
        assert key in res, key
    assert res['ivf_camera_centred'] and res['ivf_refine_iters'] == 1
    assert res['ivf_nprobe'] == 4 and res['ivf_refine_s'] > 0
    assert res['ari_vs_exact'] > 0.9 and 0 < res['recall_at_k'] <= 1
