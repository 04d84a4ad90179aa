# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/ivf_camera_partition_probe.py``: a small end-to-end call."""
import pytest
from script_loader import load_script

pytest.importorskip('faiss')


def _probe():
    return load_script('benchmarks/ivf_camera_partition_probe.py', '_icpp')


def test_main_reports_both_recalls(capsys):
    res = _probe().main(['--n', '1200', '--ids', '60', '--dim', '16',
                         '--nprobe', '2', '--k', '5', '--candidates', '10',
                         '--queries', '100'])
    for key in ('plain_recall', 'camera_centred_recall',
                'same_id_share_of_exact'):
        assert 0 <= res[key] <= 1, key
    assert res['nlist'] == 30  # 1200 // 39 < 4 sqrt(1200)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('{')


def test_faiss_search_and_l2_cells_switches():
    res = _probe().main(['--n', '1200', '--ids', '60', '--dim', '16',
                         '--nprobe', '2', '--k', '5', '--candidates', '10',
                         '--queries', '100', '--faiss-search', '--l2-cells'])
    assert not res['self_join'] and not res['spherical']
    assert 0 <= res['camera_centred_recall'] <= 1
