# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Plot a run's curves: clusters, outliers, NMI/ARI, mAP and loss per epoch.

Usage::

    python tools/analysis_tools/analyze_logs.py \
        work_dirs/RUN/TIMESTAMP/vis_data/scalars.json --out curves.png

    # compare runs (e.g. two methods on the same data): one colour per run
    python tools/analysis_tools/analyze_logs.py RUN_A/.../scalars.json \
        RUN_B/.../scalars.json --legend "Cluster Contrast" ICE --out cmp.png

Reads the ``scalars.json`` written by MMEngine's ``LocalVisBackend`` (the
pseudo-label hook logs ``pseudo_label/*`` once per epoch, validation logs
``reid/mAP`` …, training logs ``loss`` per logging interval). A line that is
not valid JSON (e.g. the last line of a run that was killed while writing)
is skipped with a warning naming the file and the line; a file that cannot
be read at all is named and left out, and the other runs are still plotted.
"""
import argparse
import json
import logging
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

PANELS = [
    ('pseudo-label clusters', ['pseudo_label/num_clusters',
                               'pseudo_label/num_true_ids']),
    ('outliers', ['pseudo_label/num_outliers']),
    ('pseudo-label quality', ['pseudo_label/nmi', 'pseudo_label/ari']),
    ('test retrieval (%)', ['reid/mAP', 'reid/R1', 'student/reid/mAP',
                            'momentum/reid/mAP']),
    ('training loss', ['loss']),
]


def load_scalars(path: str) -> Dict[str, List[Tuple[float, float]]]:
    """Series ``key -> [(epoch, value)]`` from a ``scalars.json`` file.

    Validation and pseudo-label lines have ``step`` = epoch. Training lines
    (``loss``, one per logging interval, ``epoch`` counted from 1) are spread
    evenly over their epoch; the per-iteration copies of the pseudo-label
    counts they carry are skipped (the per-epoch records hold them).

    Lines that are not a JSON object (a cut last line, garbage) are skipped
    with a warning naming ``path`` and the line number.

    Raises:
        OSError: The file cannot be opened (the message names it).
        ValueError: No line of the file could be read.
    """
    series = defaultdict(list)
    train_lines = defaultdict(list)
    bad, good = [], 0
    with open(path, encoding='utf-8', errors='replace') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad.append(lineno)
                continue
            if not isinstance(rec, dict):
                bad.append(lineno)
                continue
            good += 1
            if 'loss' in rec and 'epoch' in rec:
                train_lines[int(rec['epoch'])].append(rec)
                continue
            x = float(rec.get('step', rec.get('epoch', 0)))
            _add(series, rec, x)
    if bad:
        print_log(
            f'{path}: skipped {len(bad)} line(s) that are not valid JSON '
            f'(line {", ".join(map(str, bad[:5]))}'
            f'{", ..." if len(bad) > 5 else ""}); e.g. the last line of a run '
            'stopped while writing. Plotting the rest.',
            logger='current',
            level=logging.WARNING)
    if good == 0:
        raise ValueError(f'{path}: no readable line (is it a '
                         'vis_data/scalars.json file?).')
    for epoch, recs in sorted(train_lines.items()):
        for k, rec in enumerate(recs):
            rec = {
                key: value
                for key, value in rec.items()
                if not key.startswith('pseudo_label/')
            }
            _add(series, rec, epoch - 1 + (k + 1) / len(recs))
    return {key: sorted(values) for key, values in series.items()}


def _add(series: Dict[str, list], rec: dict, x: float) -> None:
    """Append the numeric values of one record at abscissa ``x``."""
    for key, value in rec.items():
        if key in ('step', 'epoch', 'iter') or not isinstance(
                value, (int, float)):
            continue
        series[key].append((x, float(value)))


Series = Dict[str, List[Tuple[float, float]]]


def plot(series: Union[Series, Sequence[Series]],
         out: str,
         title: str = '',
         legends: Optional[Sequence[str]] = None) -> List[str]:
    """Draw one panel per group of keys that is present; returns the keys.

    Args:
        series: One run's series (from :func:`load_scalars`), or a list of
            runs to compare; runs are told apart by colour and legend.
        out (str): Output image path.
        title (str): Figure title.
        legends (Sequence[str], optional): One name per run (defaults to
            ``run 1``, ``run 2``, ...; unused for a single run).
    """
    runs = [series] if isinstance(series, dict) else list(series)
    if legends is None:
        legends = [f'run {i + 1}' for i in range(len(runs))]
    if len(legends) != len(runs):
        raise ValueError(f'{len(legends)} legends for {len(runs)} runs')
    present = set().union(*runs)
    panels = [(name, [k for k in keys if k in present])
              for name, keys in PANELS]
    panels = [(name, keys) for name, keys in panels if keys]
    if not panels:
        raise ValueError('no known scalar (pseudo_label/*, reid/*, loss) in '
                         'the log; is it a vis_data/scalars.json file?')
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    markers = 'osd^v<>'
    for ax, (name, keys) in zip(axes[0], panels):
        for run_idx, (run, legend) in enumerate(zip(runs, legends)):
            for key in keys:
                if key not in run:
                    continue
                xs, ys = zip(*run[key])
                label = key if len(runs) == 1 else f'{legend}: {key}'
                line = '-' if run_idx == 0 else '--'
                style = line if key == 'loss' else \
                    markers[run_idx % len(markers)] + line
                ax.plot(xs, ys, style, label=label, markersize=3)
        ax.set_title(name)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [k for _, keys in panels for k in keys]


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'json', nargs='+', help='vis_data/scalars.json of one or more runs')
    parser.add_argument(
        '--legend', nargs='+', help='one name per run (when comparing)')
    parser.add_argument('--out', default='curves.png', help='output image')
    parser.add_argument('--title', default='', help='figure title')
    args = parser.parse_args()
    if args.legend is not None and len(args.legend) != len(args.json):
        parser.error(f'{len(args.legend)} legends for {len(args.json)} runs')
    runs, legends = [], []
    for i, path in enumerate(args.json):
        try:
            runs.append(load_scalars(path))
        except (OSError, ValueError) as err:
            print_log(
                f'cannot read {path}: {err}; left out of the figure.',
                logger='current',
                level=logging.WARNING)
            continue
        legends.append(args.legend[i] if args.legend else f'run {i + 1}')
    if not runs:
        sys.exit('analyze_logs.py: error: no readable log among '
                 f'{args.json}.')
    keys = plot(runs, args.out, args.title, legends)
    print(f'wrote {args.out} ({", ".join(keys)})')  # noqa: T201 (CLI output)


if __name__ == '__main__':
    main()
