# Copyright (c) mmreid_usl contributors. All rights reserved.
import importlib.util
import json
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'analyze_logs.py')
    spec = importlib.util.spec_from_file_location('analyze_logs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curves_from_scalars_json(tmp_path):
    tool = _load_tool()
    records = [
        {'reid/mAP': 0.6, 'reid/R1': 0.5, 'step': 0},
        {'pseudo_label/num_clusters': 192, 'pseudo_label/nmi': 0.8,
         'pseudo_label/num_true_ids': 734, 'step': 0},
        {'loss': 4.3, 'lr': 3.5e-4, 'epoch': 1, 'iter': 10, 'step': 10,
         'pseudo_label/num_clusters': 192},
        {'loss': 4.1, 'lr': 3.5e-4, 'epoch': 1, 'iter': 20, 'step': 20,
         'pseudo_label/num_clusters': 192},
        {'pseudo_label/num_clusters': 236, 'pseudo_label/nmi': 0.7,
         'step': 1},
        {'reid/mAP': 3.1, 'reid/R1': 4.0, 'step': 2},
    ]
    path = tmp_path / 'scalars.json'
    path.write_text('\n'.join(json.dumps(r) for r in records))
    series = tool.load_scalars(str(path))
    assert series['pseudo_label/num_clusters'] == [(0.0, 192.0),
                                                   (1.0, 236.0)]
    # training lines are spread over their epoch; their pseudo-label copies
    # are not plotted twice
    assert series['loss'] == [(0.5, 4.3), (1.0, 4.1)]
    assert series['reid/mAP'][-1] == (2.0, 3.1)
    out = str(tmp_path / 'curves.png')
    keys = tool.plot(series, out)
    assert osp.getsize(out) > 10000
    assert 'reid/mAP' in keys and 'pseudo_label/num_clusters' in keys


def test_unknown_log_is_rejected(tmp_path):
    tool = _load_tool()
    with pytest.raises(ValueError, match='no known scalar'):
        tool.plot({'foo': [(0.0, 1.0)]}, str(tmp_path / 'x.png'))


def test_compare_runs(tmp_path):
    tool = _load_tool()
    run_a = {'reid/mAP': [(0.0, 0.4), (5.0, 1.7)], 'loss': [(0.5, 4.0)]}
    run_b = {'reid/mAP': [(0.0, 0.4), (5.0, 1.9)],
             'momentum/reid/mAP': [(0.0, 0.4), (5.0, 1.9)]}
    out = str(tmp_path / 'cmp.png')
    keys = tool.plot([run_a, run_b], out, legends=['CC', 'ICE'])
    assert osp.getsize(out) > 10000
    assert keys == ['reid/mAP', 'momentum/reid/mAP', 'loss']
    with pytest.raises(ValueError, match='2 legends for 3 runs'):
        tool.plot([run_a, run_b, run_a], out, legends=['CC', 'ICE'])


def _run_main(tool, monkeypatch, *argv):
    monkeypatch.setattr('sys.argv', ['analyze_logs.py', *argv])
    tool.main()


def test_cut_last_line_names_the_file_and_still_plots(tmp_path, monkeypatch):
    tool = _load_tool()
    logged = []
    monkeypatch.setattr(tool, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    lines = [
        json.dumps({'reid/mAP': 0.6, 'step': 0}),
        json.dumps({'pseudo_label/num_clusters': 20, 'step': 0}),
        json.dumps({'reid/mAP': 3.1, 'step': 1}),
        '{"loss": 4.1, "epoch": 2, "it',  # killed while writing
    ]
    path = tmp_path / 'scalars.json'
    path.write_text('\n'.join(lines))
    series = tool.load_scalars(str(path))
    assert series['reid/mAP'] == [(0.0, 0.6), (1.0, 3.1)]
    assert len(logged) == 1 and str(path) in logged[0]
    assert 'line 4' in logged[0]

    # the command line plots it, and leaves out a run it cannot read
    out = tmp_path / 'curves.png'
    _run_main(tool, monkeypatch, str(path), str(tmp_path / 'missing.json'),
              '--legend', 'good', 'missing', '--out', str(out))
    assert osp.getsize(out) > 10000
    assert any('missing.json' in msg for msg in logged)
    with pytest.raises(SystemExit, match='no readable log'):
        _run_main(tool, monkeypatch, str(tmp_path / 'missing.json'),
                  '--out', str(out))


def test_file_without_any_readable_line_is_named(tmp_path):
    tool = _load_tool()
    path = tmp_path / 'scalars.json'
    path.write_text('{"reid/m')
    with pytest.raises(ValueError, match='scalars.json: no readable line'):
        tool.load_scalars(str(path))
