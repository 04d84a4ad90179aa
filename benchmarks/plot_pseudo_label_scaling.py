# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Plot pseudo-labelling time against N: the measured rows and the cost
model (``benchmarks/pseudo_label_cost_model.py``).

Left: the 2-core CPU, 256-d, one process: every idle-machine row of the
data file that the model is fitted to (exact kNN or IVF, end to end where
all stages were timed) against the model's totals for the exact kNN and the
IVF at two ``nprobe``. Right: the model's H100 projection of the exact
pipeline at 256-d and 2048-d on 1 and 8 GPUs (only its kNN constant is
measured on the H100; the Jaccard and DBSCAN are the 2-core CPU's, the
transfers at an assumed bandwidth: the ``*`` of the model's report).

Usage::

    python benchmarks/plot_pseudo_label_scaling.py \\
        --out docs/figures/pseudo_label_scaling.png
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import pseudo_label_cost_model as cm  # noqa: E402


def _opts(knn: str, nprobe: int = cm.DEFAULT_NPROBE) -> Dict:
    """The cost model's options with its command-line defaults (H100
    bandwidth)."""
    return cm.model_options(
        cm.parse_args(['--knn', knn, '--nprobe', str(nprobe)]))


def measured_totals(rows: Sequence[Dict], dim: int = 256) -> List[Dict]:
    """The fitted one-process ``cpu-2core`` rows of ``dim`` with an end to
    end time, measured on an idle machine: ``{n, total_s, knn, nprobe,
    commit}``."""
    out = []
    for r in rows:
        if r['device'] != 'cpu-2core' or r['dim'] != dim or \
                r['world_size'] != 1 or not r.get('fit') or \
                r['source'].startswith('Under load'):
            continue
        parts = [r.get(k) for k in ('knn_s', 'jaccard_s', 'dbscan_s')]
        total = sum(parts) if None not in parts else r.get('total_s')
        if total is None and r.get('knn_s') is not None and \
                r.get('after_knn_s') is not None:
            total = r['knn_s'] + r['after_knn_s']
        if total is not None:
            out.append(dict(n=r['n'], total_s=total, knn=r['knn'],
                            nprobe=r.get('nprobe'), commit=r['commit']))
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=cm.DEFAULT_DATA)
    parser.add_argument('--out', default='pseudo_label_scaling.png')
    args = parser.parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = cm.load_rows(args.data)
    ns = np.logspace(4, np.log10(4e6), 40).astype(int)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    cpu = cm.resolve_constants(rows, 'cpu-2core', opts=_opts('exact'))
    curves = {}
    for label, opts, style in (
            ('exact kNN (model)', _opts('exact'), 'C0-'),
            ('IVF nprobe 16 (model)', _opts('ivf', 16), 'C1-'),
            ('IVF nprobe 32 (model)', _opts('ivf', 32), 'C1--')):
        t = [cm.project(int(n), 256, 1, cpu, opts)['total_s'] for n in ns]
        curves[label] = t
        ax.plot(ns, t, style, label=label)
    points = measured_totals(rows)
    for knn, marker, colour in (('exact', 'o', 'C0'), ('ivf', 's', 'C1')):
        sel = [p for p in points if p['knn'] == knn]
        ax.scatter([p['n'] for p in sel], [p['total_s'] for p in sel],
                   marker=marker, color=colour, zorder=3,
                   label=f'{knn} (measured)')
    ax.axhline(900, color='grey', lw=0.8, ls=':')
    ax.text(1.1e4, 960, '15 min', color='grey', fontsize=8)
    ax.set(xscale='log', yscale='log', xlabel='images N',
           ylabel='kNN + Jaccard + DBSCAN (s)',
           title='2-core CPU, 256-d, one process')
    ax.legend(fontsize=8)
    h100 = cm.resolve_constants(rows, 'h100', opts=_opts('exact'))
    for dim, colour in ((256, 'C2'), (2048, 'C3')):
        for w, style in ((1, '-'), (8, '--')):
            t = [cm.project(int(n), dim, w, h100, _opts('exact'))['total_s']
                 for n in ns]
            curves[f'h100 {dim}-d W={w}'] = t
            bx.plot(ns, t, style, color=colour, label=f'{dim}-d, {w} GPU' +
                    ('s' if w > 1 else ''))
    bx.set(xscale='log', yscale='log', xlabel='images N',
           ylabel='projected total (s)',
           title='H100, exact kNN (model; Jaccard/DBSCAN on the host)')
    bx.legend(fontsize=8)
    for a in (ax, bx):
        a.grid(True, which='both', lw=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    return dict(out=args.out, points=points, n=ns.tolist(), curves=curves)


if __name__ == '__main__':
    main()
