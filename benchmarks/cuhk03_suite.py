# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Run the CUHK03 method comparisons of docs/benchmarks.md as one suite.

Every row of the CUHK03 tables (Cluster Contrast, ICE and DCMIP over seeds;
the oracle-label study; GDS stage 1 and the Theory / GDS / GDS-H adaptation
over seeds; Cluster Contrast on the target cameras alone; the longer GPU
schedules) is a job: ``tools/train.py CONFIG --work-dir WORK/NAME
--cfg-options randomness.seed=S ...``, then ``tools/test.py`` on the last
checkpoint (``--out``, and with ``--rerank`` where the table has a re-ranked
column). Jobs that need another job's checkpoint (the adaptation runs start
from stage 1) wait for it; the others run ``--parallel`` at a time, so one
GPU machine with many cores runs the whole suite at once, and a 2-core
machine runs it one job at a time. A job still running at ``--deadline``
seconds is stopped; its logs (validation every few epochs) stay.

Usage::

    # the whole suite, 12 jobs at a time, stop what runs after 500 s
    python benchmarks/cuhk03_suite.py --work-dir work_dirs/suite \\
        --parallel 12 --deadline 500
    # some jobs (names or groups: methods, oracle, gds, long)
    python benchmarks/cuhk03_suite.py --jobs dcmip-s1 gds --parallel 1
    # the tables of the finished work dir (markdown)
    python benchmarks/cuhk03_suite.py --work-dir work_dirs/suite --report

Needs ``data/cuhk03_detected`` (README: Real data) and the ImageNet
MobileNetV2 in the torch hub cache. Writes ``WORK/NAME/suite.log`` (the
commands' output) and ``WORK/summary.json`` (per job: status, wall time,
validation metrics and pseudo-label statistics per epoch, test metrics).
The jobs run with glibc's malloc tuned against page faults
(``GLIBC_TUNABLES``, see ``benchmarks/cpu_malloc_bench.py``; 1.5-2x faster
CPU training here) unless the variable is already set.
"""
import argparse
import functools
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from cpu_malloc_bench import TUNED as MALLOC_TUNED  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CC = 'configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py'
ICE = 'configs/ice/ice_mbv2_cuhk03.py'
DCMIP = 'configs/dcmip/dcmip_mbv2_cuhk03.py'
GDS_SRC = 'configs/gds/source-pretrain_mbv2_cuhk03-cam3to10.py'
THEORY = 'configs/gds/theory_mbv2_cuhk03-cam3to10-to-cam1to2.py'
GDS = 'configs/gds/gds_mbv2_cuhk03-cam3to10-to-cam1to2.py'
GDS_H = 'configs/gds/gds-h_mbv2_cuhk03-cam3to10-to-cam1to2.py'
# GDS's eps comes from the smallest rho fraction of the target distances;
# when the first clustering is degenerate the job is run again with a larger
# rho (a new job NAME-rho0.0032, reported as such)
RHO = 'default_hooks.pseudo_label.labeler.clusterer.rho'
TARGET_CAMS = [
    f'{loader}.dataset.cameras=[1,2]'
    for loader in ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
                   'test_dataloader')
]


def _job(config: str,
         seed: int,
         options: Optional[List[str]] = None,
         after: Optional[str] = None,
         rerank: bool = False,
         group: str = 'methods',
         fallbacks: Optional[List[List[str]]] = None) -> dict:
    return dict(
        config=config,
        seed=seed,
        options=list(options or []),
        after=after,
        rerank=rerank,
        group=group,
        fallbacks=list(fallbacks or []))


def build_jobs() -> Dict[str, dict]:
    """The suite: name -> job (ordered: long jobs first)."""
    jobs = {
        'cc-50e-s1':
        _job('configs/cluster_contrast/cluster-contrast_mbv2-50e_cuhk03.py',
             1, group='long'),
        'ice-40e-s1':
        _job('configs/ice/ice_mbv2-40e_cuhk03.py', 1, group='long'),
        'dcmip-50e-s1':
        _job('configs/dcmip/dcmip_mbv2-50e_cuhk03.py', 1, group='long'),
        'gds-src-s1':
        _job(GDS_SRC, 1, group='gds'),
    }
    for method, config in (('theory', THEORY), ('gds', GDS), ('gds-h', GDS_H)):
        for seed in (1, 2):
            jobs[f'{method}-s{seed}'] = _job(
                config,
                seed,
                after='gds-src-s1',
                group='gds',
                fallbacks=[[f'{RHO}=0.0032'], [f'{RHO}=0.0064']])
    for seed in (1, 2):
        jobs[f'cc-target-s{seed}'] = _job(CC, seed, TARGET_CAMS, group='gds')
    for seed in (1, 2):
        jobs[f'cc-s{seed}'] = _job(CC, seed, rerank=True)
        jobs[f'ice-s{seed}'] = _job(ICE, seed)
        jobs[f'dcmip-s{seed}'] = _job(DCMIP, seed)
    for seed in (1, 2):
        for name in ('oracle', 'oracle-merge20', 'oracle-split20'):
            jobs[f'{name}-s{seed}'] = _job(
                f'configs/cluster_contrast/'
                f'cluster-contrast_mbv2-{name}_cuhk03.py',
                seed,
                rerank=True,
                group='oracle')
    return jobs


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The ``epoch_N.pth`` with the largest N in ``work_dir``."""
    ckpts = glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    if not ckpts:
        return None
    return max(ckpts, key=lambda p: int(osp.basename(p)[6:-4]))


class Runner:
    """Starts the jobs' command chains and keeps at most N running."""

    def __init__(self, jobs: Dict[str, dict], work_dir: str, parallel: int,
                 deadline: float, python: str, threads: int) -> None:
        self.jobs = jobs
        self.work_dir = work_dir
        self.parallel = parallel
        self.deadline = time.time() + deadline if deadline else None
        self.python = python
        self.threads = threads
        self.running: Dict[str, dict] = {}
        self.status: Dict[str, dict] = {}
        self.pending: List[str] = []

    def train_command(self, name: str) -> List[str]:
        job = self.jobs[name]
        wd = osp.join(self.work_dir, name)
        opts = [f'randomness.seed={job["seed"]}'] + job['options']
        if job['after']:  # the stage-1 -> adaptation hand-off (one option)
            src = last_checkpoint(osp.join(self.work_dir, job['after']))
            opts.append(f'stage1_checkpoint={src}')
        return [
            self.python,
            osp.join(REPO, 'tools/train.py'),
            osp.join(REPO, job['config']), '--work-dir', wd, '--cfg-options'
        ] + opts

    def test_commands(self, name: str) -> List[List[str]]:
        job = self.jobs[name]
        wd = osp.join(self.work_dir, name)
        ckpt = last_checkpoint(wd)
        if ckpt is None:
            return []
        cmds = []
        for rerank in ([False, True] if job['rerank'] else [False]):
            out = osp.join(wd, 'test_rerank.json' if rerank else 'test.json')
            cmd = [
                self.python,
                osp.join(REPO, 'tools/test.py'),
                osp.join(REPO, job['config']), ckpt, '--work-dir',
                osp.join(wd, 'test'), '--out', out
            ] + (['--rerank'] if rerank else [])
            if job['options']:  # e.g. the target cameras of the test split
                cmd += ['--cfg-options'] + job['options']
            cmds.append(cmd)
        return cmds

    def _start(self, name: str, cmd: List[str], stage: str) -> None:
        wd = osp.join(self.work_dir, name)
        os.makedirs(wd, exist_ok=True)
        log = open(osp.join(wd, 'suite.log'), 'a')
        log.write(f'\n$ {" ".join(cmd)}\n')
        log.flush()
        env = dict(
            os.environ,
            PYTHONUNBUFFERED='1',
            OMP_NUM_THREADS=str(self.threads),
            GLIBC_TUNABLES=os.environ.get('GLIBC_TUNABLES', MALLOC_TUNED),
            PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True)
        self.running.setdefault(name, dict(queue=[])).update(
            proc=proc, log=log, stage=stage)

    def _launch(self, name: str) -> None:
        self.status[name] = dict(start=time.time(), stage='train')
        self._start(name, self.train_command(name), 'train')

    def _advance(self, name: str, rc: int) -> None:
        run = self.running[name]
        run['log'].close()
        st = self.status[name]
        if run['stage'] == 'train':
            st['train_rc'] = rc
            st['train_wall_s'] = round(time.time() - st['start'], 1)
            run['queue'] = self.test_commands(name) if rc == 0 else []
            if rc != 0:
                self._maybe_fallback(name)
        else:
            st.setdefault('test_rc', []).append(rc)
        if run['queue']:
            self._start(name, run['queue'].pop(0), 'test')
        else:
            st['wall_s'] = round(time.time() - st['start'], 1)
            del self.running[name]

    def _maybe_fallback(self, name: str) -> None:
        """Queue the job again with its next fallback options when its
        pseudo-labels were degenerate."""
        job = self.jobs[name]
        with open(osp.join(self.work_dir, name, 'suite.log')) as f:
            degenerate = 'the pseudo-labels are degenerate' in f.read()
        if not (degenerate and job['fallbacks']):
            return
        extra, rest = job['fallbacks'][0], job['fallbacks'][1:]
        base = name.split('@')[0]
        new = base + '@' + ','.join(
            k.rsplit('.', 1)[-1] + v
            for k, v in (o.split('=', 1) for o in extra))
        self.jobs[new] = dict(
            job,
            options=[o for o in job['options'] if o.split('=')[0] not in
                     {e.split('=')[0] for e in extra}] + extra,
            fallbacks=rest)
        self.status[name]['fallback'] = new
        self.pending.insert(0, new)

    def run(self) -> None:
        self.pending = pending = list(self.jobs)  # fallbacks are added
        while pending or self.running:
            for name, run in list(self.running.items()):
                rc = run['proc'].poll()
                if rc is not None:
                    self._advance(name, rc)
            if self.deadline and time.time() > self.deadline:
                for name, run in self.running.items():
                    os.killpg(run['proc'].pid, signal.SIGKILL)
                    run['log'].close()
                    self.status[name]['killed_at_deadline'] = run['stage']
                for name in pending:
                    self.status[name] = dict(skipped='deadline')
                break
            for name in list(pending):
                if len(self.running) >= self.parallel:
                    break
                after = self.jobs[name]['after']
                if after and (after in pending or after in self.running):
                    continue
                if after and last_checkpoint(osp.join(self.work_dir,
                                                      after)) is None:
                    self.status[name] = dict(skipped=f'{after} failed')
                    pending.remove(name)
                    continue
                pending.remove(name)
                self._launch(name)
            time.sleep(1)


@functools.lru_cache(maxsize=None)
def _load_scalars():
    """``load_scalars`` of tools/analysis_tools/analyze_logs.py (a script,
    not a module of the package): the one reader of ``scalars.json``."""
    path = osp.join(REPO, 'tools', 'analysis_tools', 'analyze_logs.py')
    spec = importlib.util.spec_from_file_location('analyze_logs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_scalars


def read_scalars(work_dir: str) -> Dict[str, Dict[str, dict]]:
    """Validation metrics and pseudo-label statistics per epoch, and the
    last training epoch reached (from the runs' ``scalars.json``)."""
    load_scalars = _load_scalars()
    val: Dict[str, dict] = {}
    pseudo: Dict[str, dict] = {}
    last_epoch = 0
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        try:
            series = load_scalars(path)
        except (OSError, ValueError):  # a run stopped before its first line
            continue
        # training lines are spread over (epoch - 1, epoch]
        last_epoch = max([last_epoch] + [
            math.ceil(x) for x, _ in series.get('loss', [])])
        for key, points in series.items():
            if key.startswith('pseudo_label/'):
                table, key = pseudo, key.split('/', 1)[1]
            elif 'reid/' in key:
                table = val
            else:
                continue
            for x, value in points:
                table.setdefault(str(int(x)), {})[key] = value
    return dict(val=val, pseudo=pseudo, last_train_epoch=last_epoch)


def summarise(jobs: Dict[str, dict], work_dir: str,
              status: Dict[str, dict]) -> Dict[str, dict]:
    out = {}
    for name, job in jobs.items():
        wd = osp.join(work_dir, name)
        if not osp.isdir(wd):
            continue
        rec = dict(job, **status.get(name, {}))
        rec.update(read_scalars(wd))
        for key in ('test', 'test_rerank'):
            path = osp.join(wd, key + '.json')
            if osp.exists(path):
                with open(path) as f:
                    rec[key] = json.load(f)
        out[name] = rec
    return out


def _fmt(x: Optional[float]) -> str:
    return '–' if x is None else f'{x:.2f}'


def report(summary: Dict[str, dict]) -> str:
    """Markdown: one row per job, then mean and spread per method."""
    lines = [
        '| job | status | epoch 0 mAP | last val: epoch, mAP / R1 '
        '(student; momentum) | test mAP / R1 | re-ranked mAP / R1 | '
        'clusters per epoch | last NMI / ARI | train wall (s) |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    groups: Dict[str, List[float]] = {}
    for name, rec in summary.items():
        val = rec.get('val', {})
        first = val.get('0', {})
        last_e = max(val, key=int) if val else None
        last = val.get(last_e, {}) if last_e is not None else {}

        def pair(m: dict, prefix: str = '') -> str:
            return (f"{_fmt(m.get(prefix + 'reid/mAP'))} / "
                    f"{_fmt(m.get(prefix + 'reid/R1'))}")

        last_s = pair(last)
        if 'student/reid/mAP' in last:
            last_s = (f"{pair(last, 'student/')}; "
                      f"{pair(last, 'momentum/')}")
        pseudo = rec.get('pseudo', {})
        clusters = ', '.join(
            f"{pseudo[e]['num_clusters']:.0f}"
            for e in sorted(pseudo, key=int) if 'num_clusters' in pseudo[e])
        last_p = pseudo[max(pseudo, key=int)] if pseudo else {}
        if rec.get('train_rc') == 0:
            status = 'done'
        elif rec.get('killed_at_deadline'):
            status = ('stopped (deadline) in epoch '
                      f"{rec.get('last_train_epoch') or '?'}")
        elif rec.get('train_rc') is None:
            # no exit status recorded: still running, or the suite itself
            # was interrupted
            status = ('unfinished (no exit status) in epoch '
                      f"{rec.get('last_train_epoch') or '?'}")
        else:
            status = f"failed (rc {rec.get('train_rc')})"
        test = rec.get('test', {})
        rr = rec.get('test_rerank', {})
        lines.append(
            f"| {name} | {status} | {_fmt(first.get('reid/mAP'))} | "
            f'{last_e}: {last_s} | {pair(test)} | '
            f"{pair(rr) if rr else '–'} | {clusters} | "
            f"{_fmt(last_p.get('nmi'))} / {_fmt(last_p.get('ari'))} | "
            f"{rec.get('train_wall_s', '–')} |")
        if 'reid/mAP' in test:
            groups.setdefault(name.rsplit('-s', 1)[0],
                              []).append(test['reid/mAP'])
    lines += ['', '| method | seeds | test mAP mean | spread (max - min) |',
              '|---|---|---|---|']
    for method, vals in groups.items():
        lines.append(f'| {method} | {len(vals)} | '
                     f'{sum(vals) / len(vals):.2f} | '
                     f'{max(vals) - min(vals):.2f} |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/cuhk03_suite')
    parser.add_argument(
        '--jobs', nargs='+', help='job names or groups (default: all)')
    parser.add_argument('--parallel', type=int, default=1)
    parser.add_argument(
        '--deadline',
        type=float,
        default=0,
        help='stop jobs still running after this many seconds (0: never)')
    parser.add_argument(
        '--threads', type=int, default=2, help='OMP threads per job')
    parser.add_argument(
        '--report',
        action='store_true',
        help='run nothing: write summary.json and print the tables of what '
        'the work dir holds')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='appended to every training command (e.g. a smoke budget)')
    args = parser.parse_args()

    jobs = build_jobs()
    if args.jobs:
        keep = {
            n
            for n, j in jobs.items() if n in args.jobs or j['group'] in
            args.jobs
        }
        unknown = set(args.jobs) - set(jobs) - {
            j['group']
            for j in jobs.values()
        }
        if unknown:
            parser.error(f'unknown jobs or groups: {sorted(unknown)}; '
                         f'jobs: {list(jobs)}')
        jobs = {n: j for n, j in jobs.items() if n in keep}
    for job in jobs.values():
        job['options'] += args.cfg_options
    os.makedirs(args.work_dir, exist_ok=True)
    status_path = osp.join(args.work_dir, 'status.json')
    status = {}
    if osp.exists(status_path):
        with open(status_path) as f:
            status = json.load(f)
    if not args.report:
        runner = Runner(jobs, args.work_dir, args.parallel, args.deadline,
                        sys.executable, args.threads)
        try:
            runner.run()
        finally:
            status.update(runner.status)
            with open(status_path, 'w') as f:
                json.dump(status, f, indent=1)
    summary = summarise(jobs, args.work_dir, status)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    print(report(summary))


if __name__ == '__main__':
    main()
