# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Tests of benchmarks/cuhk03_suite.py: its jobs, scheduling and report."""
import importlib.util
import json
import os
import os.path as osp
import stat
import sys

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _suite():
    spec = importlib.util.spec_from_file_location(
        'cuhk03_suite', osp.join(REPO, 'benchmarks', 'cuhk03_suite.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_job_config_exists_and_loads():
    suite = _suite()
    jobs = suite.build_jobs()
    assert {'cc-s1', 'cc-s2', 'ice-s1', 'ice-s2', 'dcmip-s1', 'dcmip-s2',
            'gds-src-s1', 'theory-s1', 'gds-s2', 'gds-h-s1', 'cc-target-s1',
            'oracle-s1', 'oracle-merge20-s1', 'oracle-split20-s1',
            'oracle-s2', 'oracle-merge20-s2', 'oracle-split20-s2'} <= set(jobs)
    assert jobs['oracle-split20-s2']['seed'] == 2
    assert jobs['oracle-merge20-s2']['rerank']
    for name, job in jobs.items():
        cfg = Config.fromfile(osp.join(REPO, job['config']))
        assert cfg.train_dataloader.dataset.data_root.rstrip('/') == \
            'data/cuhk03_detected', name
        if job['after']:
            assert job['after'] in jobs


@pytest.mark.parametrize('name, merge, split', [
    ('oracle', 0.0, 0.0),
    ('oracle-merge20', 0.2, 0.0),
    ('oracle-split20', 0.0, 0.2),
])
def test_oracle_configs_say_oracle(name, merge, split):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/cluster_contrast',
                 f'cluster-contrast_mbv2-{name}_cuhk03.py'))
    labeler = cfg.default_hooks.pseudo_label.labeler
    assert labeler.distance is None
    assert dict(labeler.clusterer) == dict(
        type='OracleClusterer', merge_ratio=merge, split_ratio=split)
    base = Config.fromfile(
        osp.join(REPO,
                 'configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py'))
    # everything else is the pseudo-label run's
    assert cfg.train_dataloader == base.train_dataloader
    assert cfg.train_cfg == base.train_cfg


@pytest.mark.parametrize('path, epochs, iters, batch', [
    ('cluster_contrast/cluster-contrast_mbv2-50e_cuhk03.py', 50, 200, 64),
    ('ice/ice_mbv2-40e_cuhk03.py', 40, 400, 32),
    ('dcmip/dcmip_mbv2-50e_cuhk03.py', 50, 200, 64),
])
def test_official_length_configs(path, epochs, iters, batch):
    cfg = Config.fromfile(osp.join(REPO, 'configs', path))
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_dataloader.sampler.samples_per_epoch == iters * batch
    assert cfg.model.get('momentum', 0.001) == 0.001


STUB = '''#!{python}
import json, os, sys
tool, args = sys.argv[1], sys.argv[2:]
wd = args[args.index('--work-dir') + 1]
os.makedirs(wd, exist_ok=True)
if tool.endswith('train.py'):
    opts = ' '.join(args)
    if 'FAIL' in opts and 'rho=0.0032' not in opts:
        print('RuntimeError: ... the pseudo-labels are degenerate. ...')
        sys.exit(1)
    if 'SLOW' in opts:
        import time; time.sleep(60)
    open(os.path.join(wd, 'epoch_1.pth'), 'w').close()
    open(os.path.join(wd, 'epoch_2.pth'), 'w').close()
    print('trained with', opts)
    print('GLIBC_TUNABLES', os.environ.get('GLIBC_TUNABLES'))
else:
    out = args[args.index('--out') + 1]
    json.dump({{'reid/mAP': 12.5 if '--rerank' in args else 10.0,
               'reid/R1': 5.0}}, open(out, 'w'))
'''


def _stub(tmp_path):
    path = tmp_path / 'stub_python'
    path.write_text(STUB.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _job(suite, after=None, options=(), fallbacks=(), rerank=False):
    return suite._job(
        'configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py',
        1,
        list(options),
        after=after,
        rerank=rerank,
        fallbacks=[list(f) for f in fallbacks])


@pytest.mark.slow
def test_runner_order_tests_and_fallback(tmp_path):
    suite = _suite()
    jobs = {
        'late': _job(suite, after='src', options=['FAIL=1'],
                     fallbacks=[[f'{suite.RHO}=0.0032']]),
        'src': _job(suite, rerank=True),
        'broken': _job(suite, after='missing-ckpt'),
        'missing-ckpt': _job(suite, options=['FAIL=1']),
    }
    runner = suite.Runner(jobs, str(tmp_path / 'wd'), parallel=2,
                          deadline=120, python=_stub(tmp_path), threads=1)
    runner.run()
    st = runner.status
    assert st['src']['train_rc'] == 0 and st['src']['test_rc'] == [0, 0]
    # the dependent job gets the checkpoint of the job it waits for
    log = open(tmp_path / 'wd' / 'late' / 'suite.log').read()
    assert 'stage1_checkpoint=' + str(tmp_path / 'wd' / 'src' / 'epoch_2.pth') in log
    # jobs run with malloc tuned against page faults (cpu_malloc_bench.py)
    # unless the caller set GLIBC_TUNABLES
    expected = os.environ.get('GLIBC_TUNABLES', suite.MALLOC_TUNED)
    assert f'GLIBC_TUNABLES {expected}' in open(tmp_path / 'wd' / 'src' /
                                                'suite.log').read()
    # degenerate first clustering: run again with the larger rho
    assert st['late']['train_rc'] == 1
    new = st['late']['fallback']
    assert new == 'late@rho0.0032' and st[new]['train_rc'] == 0
    assert f'{suite.RHO}=0.0032' in jobs[new]['options']
    # a job whose dependency failed is skipped with the reason
    assert st['broken'] == dict(skipped='missing-ckpt failed')
    summary = suite.summarise(jobs, str(tmp_path / 'wd'), st)
    assert summary['src']['test']['reid/mAP'] == 10.0
    assert summary['src']['test_rerank']['reid/mAP'] == 12.5


@pytest.mark.slow
def test_runner_deadline_stops_jobs(tmp_path):
    suite = _suite()
    jobs = {'slow': _job(suite, options=['SLOW=1']), 'next': _job(suite)}
    runner = suite.Runner(jobs, str(tmp_path / 'wd'), parallel=1,
                          deadline=3, python=_stub(tmp_path), threads=1)
    runner.run()
    assert runner.status['slow']['killed_at_deadline'] == 'train'
    assert runner.status['next'] == dict(skipped='deadline')


def _scalars(work_dir, lines):
    path = osp.join(work_dir, '20260101_000000', 'vis_data')
    os.makedirs(path)
    with open(osp.join(path, 'scalars.json'), 'w') as f:
        for rec in lines:
            f.write(json.dumps(rec) + '\n')
        f.write('{"cut line')  # a run killed while writing


def test_report_from_logs(tmp_path):
    suite = _suite()
    wd = str(tmp_path)
    jobs = {n: _job(suite) for n in ('m-s1', 'm-s2', 'x-s1', 'y-s1')}
    for name, final in (('m-s1', 2.0), ('m-s2', 3.0), ('x-s1', None),
                        ('y-s1', None)):
        os.makedirs(osp.join(wd, name))
        _scalars(
            osp.join(wd, name), [
                {'reid/mAP': 0.4, 'reid/R1': 0.1, 'step': 0},
                {'pseudo_label/num_clusters': 218, 'pseudo_label/nmi': 0.8,
                 'pseudo_label/ari': 0.06, 'step': 0},
                {'loss': 1.0, 'lr': 1e-3, 'epoch': 1, 'step': 10,
                 'pseudo_label/num_clusters': 218},
                {'pseudo_label/num_clusters': 400, 'pseudo_label/nmi': 0.82,
                 'pseudo_label/ari': 0.15, 'step': 1},
                {'loss': 0.5, 'lr': 1e-3, 'epoch': 2, 'step': 20},
                {'reid/mAP': 1.5, 'reid/R1': 0.7, 'step': 2},
            ])
        if final is not None:
            with open(osp.join(wd, name, 'test.json'), 'w') as f:
                json.dump({'reid/mAP': final, 'reid/R1': 1.0}, f)
    status = {
        'm-s1': dict(train_rc=0, train_wall_s=10.0),
        'm-s2': dict(train_rc=0),
        'x-s1': dict(killed_at_deadline='train')
    }
    summary = suite.summarise(jobs, wd, status)
    rec = summary['m-s1']
    # per-iteration copies of the counts are not clusterings
    assert list(rec['pseudo']) == ['0', '1']
    assert rec['val']['2']['reid/mAP'] == 1.5
    assert rec['last_train_epoch'] == 2
    table = suite.report(summary)
    assert '| m-s1 | done | 0.40 | 2: 1.50 / 0.70 | 2.00 / 1.00 |' in table
    assert '218, 400' in table and '0.82 / 0.15' in table
    assert '| x-s1 | stopped (deadline) in epoch 2 |' in table
    # no status record: running, or the suite was interrupted
    assert '| y-s1 | unfinished (no exit status) in epoch 2 |' in table
    assert '| m | 2 | 2.50 | 1.00 |' in table
