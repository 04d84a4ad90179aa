# Copyright (c) mmreid_usl contributors. All rights reserved.
"""benchmarks/cpu_malloc_bench.py runs both malloc variants and reports
their page faults (figures only: no timing is asserted)."""
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow  # main() runs each variant in its own process
def test_both_variants_run_and_report(capsys):
    spec = importlib.util.spec_from_file_location(
        'cpu_malloc_bench', osp.join(REPO, 'benchmarks',
                                     'cpu_malloc_bench.py'))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(['--batch', '2', '--height', '32', '--width', '16',
                '--iters', '1', '--threads', '1'])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r['variant']: r for r in out['rows']}
    assert set(rows) == {'glibc default', 'tuned'}
    # each variant ran in its own process with its own environment
    assert rows['glibc default']['glibc_tunables'] == ''
    assert rows['tuned']['glibc_tunables'] == bench.TUNED
    for row in rows.values():
        assert row['minor_faults_per_step'] >= 0
        assert row['wall_per_step_s'] > 0 and row['peak_rss_gb'] > 0
