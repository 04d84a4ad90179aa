# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/ivf_camera_partition_probe.py``: its exact re-scoring and a
small end-to-end call."""
import pytest
import torch
from script_loader import load_script

pytest.importorskip('faiss')


def _probe():
    return load_script('benchmarks/ivf_camera_partition_probe.py', '_icpp')


def test_rescore_keeps_the_nearest_candidates_in_order():
    feats = torch.tensor([[0.], [1.], [3.], [6.]])
    cand = torch.tensor([[3, 2, 1], [0, 3, 2], [3, 1, 2], [0, 1, 2]])
    out = _probe().rescore(feats, cand, 2, chunk=3)
    assert out.tolist() == [[1, 2], [0, 2], [2, 1], [2, 1]]


def test_main_reports_both_recalls(capsys):
    res = _probe().main(['--n', '1200', '--ids', '60', '--dim', '16',
                         '--nprobe', '2', '--k', '5', '--candidates', '10',
                         '--queries', '100'])
    for key in ('plain_recall', 'camera_centred_recall',
                'same_id_share_of_exact'):
        assert 0 <= res[key] <= 1, key
    assert res['nlist'] == 30  # 1200 // 39 < 4 sqrt(1200)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('{')
