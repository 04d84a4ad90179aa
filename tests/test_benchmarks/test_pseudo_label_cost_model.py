# Copyright (c) mmreid_usl contributors. All rights reserved.
"""benchmarks/pseudo_label_cost_model.py: the least-squares fit recovers
known constants, the projections scale as its formulas say, the measured
rows load, and the CLI prints its table and the JSON line (in process)."""
import ast
import json
import math
import os.path as osp
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

import pseudo_label_cost_model as cm  # noqa: E402

TRUE = dict(
    knn=3e-12, ivf_build=2e-10, ivf_search=5e-11, jaccard=4e-7, dbscan=2e-5)
OPTS = dict(
    knn='exact',
    nprobe=32,
    k1=30,
    k2=6,
    weighting='absolute',
    jaccard_balance='even',
    jaccard_serial_fraction=0.0,
    bandwidth_gbs=50.0,
    v_nnz=30.0,
    vhat_nnz=180.0,
    pairs_per_row=26.8)


def _synthetic_rows(device='h100', t0=0.0):
    """Rows whose every figure is the model's value under ``TRUE``."""
    rows = []
    for n, dim in [(10_000, 2048), (40_000, 256), (150_000, 512),
                   (300_000, 128)]:
        feat = {
            s: cm.stage_feature(s, n, dim)
            for s in ('knn', 'jaccard', 'dbscan')
        }
        rows.append(
            dict(
                source=f'synthetic {n}',
                machine='m',
                device=device,
                n=n,
                dim=dim,
                world_size=1,
                knn='exact',
                knn_s=TRUE['knn'] * feat['knn'] + t0,
                jaccard_s=TRUE['jaccard'] * feat['jaccard'],
                dbscan_s=TRUE['dbscan'] * feat['dbscan'],
                commit='x',
                fit=['knn', 'jaccard', 'dbscan']))
    for n, nlist, nprobe in [(20_000, 565, 8), (20_000, 565, 128),
                             (80_000, 1131, 16)]:
        build = TRUE['ivf_build'] * cm.stage_feature(
            'ivf_build', n, 256, nlist=nlist)
        search = TRUE['ivf_search'] * cm.stage_feature(
            'ivf_search', n, 256, nlist=nlist, nprobe=nprobe)
        rows.append(
            dict(
                source=f'ivf {n} {nprobe}',
                machine='m',
                device=device,
                n=n,
                dim=256,
                world_size=1,
                knn='ivf',
                knn_s=build + search,
                ivf_build_s=build,
                ivf_search_s=search,
                nlist=nlist,
                nprobe=nprobe,
                jaccard_s=None,
                dbscan_s=None,
                commit='x',
                fit=['ivf_build', 'ivf_search']))
    return rows


@pytest.mark.parametrize('weighting', ['absolute', 'relative'])
def test_fit_recovers_known_constants(weighting):
    fitted = cm.fit_device(_synthetic_rows(), 'h100', weighting)
    assert set(fitted) == set(TRUE)
    for stage, value in TRUE.items():
        assert fitted[stage]['value'] == pytest.approx(value, rel=1e-6)
        assert fitted[stage]['rms_rel_residual'] < 1e-6
        assert fitted[stage]['basis'] == 'fit'


def test_fit_with_intercept_recovers_t0():
    fitted = cm.fit_device(
        _synthetic_rows(t0=0.25), 'h100', knn_intercept=True)
    assert fitted['knn']['value'] == pytest.approx(TRUE['knn'], rel=1e-6)
    assert fitted['knn_t0']['value'] == pytest.approx(0.25, rel=1e-6)
    # without the intercept the same rows do not fit exactly
    plain = cm.fit_device(_synthetic_rows(t0=0.25), 'h100')
    assert plain['knn']['rms_rel_residual'] > 1e-3


def test_fit_least_squares_is_least_squares():
    x = np.array([[1.0], [2.0], [3.0]])
    t = np.array([1.0, 2.0, 4.0])
    theta, res = cm.fit_least_squares(x, t, 'absolute')
    assert theta[0] == pytest.approx((1 + 4 + 12) / 14, rel=1e-12)
    assert res == pytest.approx((x[:, 0] * theta[0] - t) / t)
    theta, _ = cm.fit_least_squares(x, t, 'relative')
    u = x[:, 0] / t
    assert theta[0] == pytest.approx(u.sum() / (u**2).sum(), rel=1e-12)
    with pytest.raises(ValueError):
        cm.fit_least_squares(x, t, 'median')


def _project(n, w, dim=256, **opts):
    consts = cm.resolve_constants(_synthetic_rows(), 'h100')
    return cm.project(n, dim, w, consts, dict(OPTS, **opts))


def test_projection_scales_as_the_formulas():
    one = _project(1_000_000, 4)
    two = _project(2_000_000, 4)
    # N doubling: exact kNN x4, Jaccard and DBSCAN x2
    assert two['knn_s'] == pytest.approx(4 * one['knn_s'], rel=1e-12)
    assert two['jaccard_s'] == pytest.approx(2 * one['jaccard_s'], rel=1e-12)
    assert two['dbscan_s'] == pytest.approx(2 * one['dbscan_s'], rel=1e-12)
    # W doubling: kNN and Jaccard / 2, DBSCAN unchanged
    w8 = _project(1_000_000, 8)
    assert w8['knn_s'] == pytest.approx(one['knn_s'] / 2, rel=1e-12)
    assert w8['jaccard_s'] == pytest.approx(one['jaccard_s'] / 2, rel=1e-12)
    assert w8['dbscan_s'] == one['dbscan_s']
    # D: the exact kNN only
    d8 = _project(1_000_000, 4, dim=2048)
    assert d8['knn_s'] == pytest.approx(8 * one['knn_s'], rel=1e-12)
    assert d8['jaccard_s'] == one['jaccard_s']
    # absolute values: the formulas with the known constants
    n = 1_000_000
    assert one['knn_s'] == pytest.approx(
        TRUE['knn'] * n * n * 256 / 4, rel=1e-6)
    assert one['jaccard_s'] == pytest.approx(
        TRUE['jaccard'] * n * 30 * 6 / 4, rel=1e-6)
    assert one['dbscan_s'] == pytest.approx(TRUE['dbscan'] * n, rel=1e-6)
    total = sum(one[k] for k in ('knn_s', 'jaccard_s', 'dbscan_s', 'comm_s'))
    assert one['total_s'] == pytest.approx(total, rel=1e-12)


def test_ivf_projection_follows_n_to_the_1_5():
    n = 1_000_000
    one = _project(n, 2, knn='ivf', nprobe=64)
    nlist = cm.default_nlist(n)
    assert nlist == 4000
    build = TRUE['ivf_build'] * n * nlist * 256
    search = TRUE['ivf_search'] * n**1.5 * 64 * 256 / (4 * 2)
    assert one['knn_s'] == pytest.approx(build + search, rel=1e-6)
    # the search part halves with W, the build does not
    four = _project(n, 4, knn='ivf', nprobe=64)
    assert four['knn_s'] == pytest.approx(build + search / 2, rel=1e-6)


def test_jaccard_share_and_comm():
    assert cm.jaccard_share(1, 'triangle') == 1.0
    assert cm.jaccard_share(8, 'even') == pytest.approx(1 / 8)
    assert cm.jaccard_share(8, 'triangle') == pytest.approx(15 / 64)
    assert cm.jaccard_share(4, 'even', 0.5) == pytest.approx(0.5 / 4 + 0.5)
    assert sum(cm.comm_bytes(10**6, 256, 1).values()) == 0
    assert _project(10**6, 1)['comm_s'] == 0
    b2 = cm.comm_bytes(10**6, 256, 2)
    b8 = cm.comm_bytes(10**6, 256, 8)
    assert b2['ring'] == pytest.approx(0.5 * 10**6 * 2 * 4 * 256)
    assert b8['ring'] == pytest.approx(7 / 8 * 10**6 * 2 * 4 * 256)
    assert b8['labels'] == b2['labels'] == 8 * 10**6
    p = _project(10**6, 8, bandwidth_gbs=10.0)
    assert p['comm_s'] == pytest.approx(sum(b8.values()) / 1e10)
    assert 'comm' in p['assumed']


def test_default_nlist_is_the_package_rule():
    """The script's nlist rule is the one of approx_knn.default_nlist (read
    from the source, so torch is not imported)."""
    path = osp.join(REPO, 'mmreid_usl', 'clustering', 'approx_knn.py')
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    node = next(
        n for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name == 'default_nlist')
    scope = {'math': math}
    exec(
        compile(ast.Module(body=[node], type_ignores=[]), path, 'exec'), scope)
    for n in [1, 38, 39, 100, 20_000, 200_000, 10**6, 4 * 10**6]:
        assert cm.default_nlist(n) == scope['default_nlist'](n)


def test_h100_assumed_constants_come_from_the_cpu():
    rows = _synthetic_rows('cpu-2core')
    gpu = dict(
        _synthetic_rows('h100')[0],
        fit=['knn'],
        knn_s=TRUE['knn'] / 10 * cm.stage_feature('knn', 10_000, 2048))
    consts = cm.resolve_constants(rows + [gpu], 'h100')
    assert consts['knn']['value'] == pytest.approx(TRUE['knn'] / 10)
    for stage in ('jaccard', 'dbscan'):
        assert consts[stage]['basis'] == 'assumed'
        assert consts[stage]['value'] == pytest.approx(TRUE[stage])
    for stage in ('ivf_build', 'ivf_search'):
        assert consts[stage]['value'] == pytest.approx(TRUE[stage] / 10)
    p = cm.project(10**6, 256, 1, consts, OPTS)
    assert p['assumed'] == ['jaccard', 'dbscan']
    given = cm.resolve_constants(
        rows + [gpu], 'h100', overrides=dict(jaccard=1e-8))
    assert given['jaccard']['basis'] == 'given'
    assert given['jaccard']['value'] == 1e-8


def test_real_data_file_loads_with_the_required_keys():
    rows = cm.load_rows(cm.DEFAULT_DATA)
    assert len(rows) >= 10
    for row in rows:
        for key in cm.REQUIRED_KEYS:
            assert key in row, (row['source'], key)
        assert row['device'] in cm.DEVICES
        assert row['knn'] in cm.KNN_KINDS
        for key in ('knn_s', 'jaccard_s', 'dbscan_s'):
            assert row[key] is None or row[key] > 0
        for stage in row.get('fit', []):
            assert row[cm.STAGES[stage][1]] is not None
    # the figures of docs/benchmarks.md that anchor the fit
    by_source = {r['source']: r for r in rows}
    exact = [r for r in rows if r['n'] == 200_000 and r['knn_s'] == 200.8]
    assert len(exact) == 1 and exact[0]['dim'] == 256
    assert 103.0 <= exact[0]['jaccard_s'] <= 114.4
    h100 = [
        r for s, r in by_source.items() if r['device'] == 'h100'
        and r['n'] == 32621 and r.get('precision') == 'fp32'
    ]
    assert [r['knn_s'] for r in h100] == [0.37]
    # every stage of both devices that the model needs gets a constant
    for device in cm.DEVICES:
        consts = cm.resolve_constants(rows, device)
        assert all(c['value'] for c in consts.values())
        assert consts['knn']['basis'] == 'fit'


def test_load_rows_rejects_a_row_without_a_key(tmp_path):
    row = dict(_synthetic_rows()[0])
    del row['commit']
    path = tmp_path / 'rows.json'
    path.write_text(json.dumps([row]))
    with pytest.raises(ValueError, match='commit'):
        cm.load_rows(str(path))


def test_cli_prints_the_table_and_the_json_line(capsys):
    result = cm.main([
        '--n', '1000000', '4000000', '--world-size', '1', '8', '--dim', '256',
        '--device', 'h100', '--json'
    ])
    lines = capsys.readouterr().out.strip().splitlines()
    out = json.loads(lines[-1])
    assert out['device'] == 'h100'
    assert [(p['n'], p['world_size'])
            for p in out['projections']] == [(1_000_000, 1), (1_000_000, 8),
                                             (4_000_000, 1), (4_000_000, 8)]
    assert out['projections'] == json.loads(json.dumps(result['projections']))
    table = [
        line for line in lines
        if line.startswith('| 1,000,000 |') or line.startswith('| 4,000,000 |')
    ]
    assert len(table) == 4
    assert any(line.startswith('| N | D | W | kNN (s) |') for line in lines)
    assert 'Assumptions:' in lines and 'Constants:' in lines
    assert len(out['assumptions']) >= 10
    # the table's totals are the JSON's
    first = table[0].split('|')
    assert first[3].strip() == '1'
    assert float(first[8].strip().rstrip('*').replace(',', '')) == \
        pytest.approx(out['projections'][0]['total_s'], rel=0.01)
    # W = 8 divides the kNN by 8 on the real fit too
    p1, p8 = out['projections'][:2]
    assert p8['knn_s'] == pytest.approx(p1['knn_s'] / 8, rel=1e-12)
    assert p8['dbscan_s'] == p1['dbscan_s']


def test_cli_without_json_prints_no_json(capsys):
    cm.main([
        '--n', '200000', '--world-size', '2', '--dim', '2048', '--device',
        'cpu-2core'
    ])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert not last.startswith('{')
