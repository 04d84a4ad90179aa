# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Plot the distance distributions of positive and negative pairs.

Usage::

    python tools/analysis_tools/plot_distance_distributions.py \
        CONFIG CHECKPOINT [CONFIG CHECKPOINT ...] [--split test] \
        [--titles NAME ...] [--distance cosine|euclidean] [--bins 100] \
        [--range LOW HIGH] [--out fig.png] [--out-json stats.json] \
        [--cfg-options ...]

The picture of GDS (Jin et al., ECCV 2020, https://arxiv.org/abs/2006.00752,
supplement Fig. 1): for every (config, checkpoint) the L2-normalised
features of one split are extracted (the model's ``test_cfg.encoder``
encoder, the config's test pipeline) and the distances of ALL pairs of
images are split into positives (same person) and negatives; one panel per
checkpoint shows both histograms (densities; red = positive, green =
negative, as in the paper), the Gaussians fitted to them (mean and variance
of the pairs) and two overlap figures: the overlapping coefficient of the
fitted Gaussians, :math:`\\int \\min(p^+, p^-)\\,dx`, and the same integral
of the two histograms. Smaller overlap = better separated.

The distance is GDS's: ``(1 - cos)/2`` (``--distance cosine``, default) or
half the Euclidean distance of the normalised features, both in ``[0, 1]``.

Splits: ``test`` (query ∪ gallery of ``test_dataloader``), ``query``,
``gallery`` (the same dataset with that split), ``train`` (the
``cluster_dataloader`` when the config has one, else ``test_dataloader``
with ``split='train'``). Distractors (pid 0) and junk (-1) are left out: they
are not identities. Pairs are accumulated in row chunks, so a Market-size
test set (19k images, 186M pairs) needs no N x N matrix at once.

To compare direct transfer with an adapted model, give both, e.g. the GDS-H
config with the stage-1 checkpoint and with its own::

    python tools/analysis_tools/plot_distance_distributions.py \
        configs/gds/gds-h_mbv2_cuhk03-cam3to10-to-cam1to2.py stage1.pth \
        configs/gds/gds-h_mbv2_cuhk03-cam3to10-to-cam1to2.py gds-h.pth \
        --titles "direct transfer" "GDS-H" --out distances.png
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmreid_usl.apis import extract_features, init_model  # noqa: E402
from mmreid_usl.engine.checkpointing import run_setup  # noqa: E402

SPLITS = ('test', 'query', 'gallery', 'train')
POS_COLOR, NEG_COLOR = '#d7191c', '#1a9641'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(
        description='Histograms of positive / negative pair distances')
    parser.add_argument(
        'pairs',
        nargs='+',
        metavar='CONFIG CHECKPOINT',
        help='one or more config and checkpoint pairs (one panel each)')
    parser.add_argument('--split', choices=SPLITS, default='test')
    parser.add_argument(
        '--titles', nargs='+', help='panel titles (default: checkpoint name)')
    parser.add_argument(
        '--distance', choices=('cosine', 'euclidean'), default='cosine')
    parser.add_argument('--bins', type=int, default=100)
    parser.add_argument(
        '--range',
        nargs=2,
        type=float,
        metavar=('LOW', 'HIGH'),
        help='histogram range (default: the smallest to the largest '
        'distance of each model; give e.g. 0 1 to compare panels)')
    parser.add_argument('--out', default='distance_distributions.png')
    parser.add_argument('--out-json', help='also write the statistics here')
    run_setup.add_device_arg(parser)
    run_setup.add_cfg_options_arg(
        parser, help='override settings of every config (key=value)')
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error('give CONFIG CHECKPOINT pairs')
    if args.titles and len(args.titles) != len(args.pairs) // 2:
        parser.error('give one --titles entry per pair')
    if args.bins < 2:
        parser.error('--bins must be >= 2')
    return args


def _chunks(x: torch.Tensor, pid_t: torch.Tensor, distance: str,
            chunk_size: int):
    """Yield ``(positive, negative)`` distances of the pairs ``i < j`` of
    each chunk of rows (float64 numpy)."""
    n = len(x)
    cols = torch.arange(n)
    for r0 in range(0, n, chunk_size):
        r1 = min(n, r0 + chunk_size)
        cos = (x[r0:r1] @ x.t()).clamp(-1, 1).double()
        d = (1 - cos) / 2 if distance == 'cosine' else \
            (2 - 2 * cos).clamp(min=0).sqrt() / 2
        upper = cols[None, :] > torch.arange(r0, r1)[:, None]
        same = pid_t[r0:r1, None] == pid_t[None, :]
        yield d[upper & same].numpy(), d[upper & ~same].numpy()


def pair_distance_stats(feats: torch.Tensor,
                        pids: np.ndarray,
                        bins: int = 100,
                        distance: str = 'cosine',
                        chunk_size: int = 1024,
                        value_range: Optional[Sequence[float]] = (0, 1)
                        ) -> Dict:
    """Histograms and moments of the positive / negative pair distances.

    Every unordered pair ``i < j`` is counted once.

    Args:
        feats (Tensor): ``(N, D)`` L2-normalised features.
        pids (np.ndarray): ``(N,)`` person ids.
        bins (int): Histogram bins over ``[0, 1]``.
        distance (str): ``'cosine'``: ``(1 - cos)/2``; ``'euclidean'``:
            ``||x - y||/2``.
        chunk_size (int): Rows per chunk.
        value_range (Sequence[float], optional): Histogram range; None: the
            smallest to the largest distance (one more pass). Defaults to
            ``(0, 1)``.

    Returns:
        dict: ``edges`` (bins + 1), and for ``pos`` / ``neg``: ``hist``
        (counts; values outside the range go to the end bins), ``count``,
        ``mean``, ``var`` (population variance).
    """
    if distance not in ('cosine', 'euclidean'):
        raise ValueError(f'unknown distance {distance!r}')
    x = F.normalize(feats.float(), dim=1).cpu()
    pid_t = torch.as_tensor(np.asarray(pids), dtype=torch.long)
    if value_range is None:
        lo, hi = np.inf, -np.inf
        for pos, neg in _chunks(x, pid_t, distance, chunk_size):
            for vals in (pos, neg):
                if vals.size:
                    lo, hi = min(lo, vals.min()), max(hi, vals.max())
        pad = max(hi - lo, 1e-6) * 0.02
        value_range = (max(0.0, lo - pad), min(1.0, hi + pad))
    lo, hi = float(value_range[0]), float(value_range[1])
    edges = np.linspace(lo, hi, bins + 1)
    acc = {
        k: dict(hist=np.zeros(bins, dtype=np.int64), count=0, s1=0.0, s2=0.0)
        for k in ('pos', 'neg')
    }
    for chunk in _chunks(x, pid_t, distance, chunk_size):
        for key, vals in zip(('pos', 'neg'), chunk):
            a = acc[key]
            a['hist'] += np.histogram(np.clip(vals, lo, hi), bins=edges)[0]
            a['count'] += int(vals.size)
            a['s1'] += float(vals.sum())
            a['s2'] += float((vals**2).sum())
    out: Dict = dict(edges=edges)
    for key, a in acc.items():
        if a['count'] == 0:
            raise ValueError(f'no {"positive" if key == "pos" else "negative"}'
                             ' pair in this split')
        mean = a['s1'] / a['count']
        var = max(a['s2'] / a['count'] - mean**2, 0.0)
        out[key] = dict(hist=a['hist'], count=a['count'], mean=mean, var=var)
    return out


def _gauss(x: np.ndarray, mean: float, var: float) -> np.ndarray:
    var = max(var, 1e-12)
    return np.exp(-(x - mean)**2 / (2 * var)) / np.sqrt(2 * np.pi * var)


def gaussian_overlap(m1: float, v1: float, m2: float, v2: float,
                     num: int = 20001) -> float:
    """Overlapping coefficient ``∫ min(N(m1, v1), N(m2, v2)) dx`` (numeric,
    trapezoid rule over mean ± 10 standard deviations of both)."""
    s1, s2 = np.sqrt(max(v1, 1e-12)), np.sqrt(max(v2, 1e-12))
    lo = min(m1 - 10 * s1, m2 - 10 * s2)
    hi = max(m1 + 10 * s1, m2 + 10 * s2)
    x = np.linspace(lo, hi, num)
    return float(
        np.trapezoid(np.minimum(_gauss(x, m1, v1), _gauss(x, m2, v2)), x)
        if hasattr(np, 'trapezoid') else np.trapz(
            np.minimum(_gauss(x, m1, v1), _gauss(x, m2, v2)), x))


def histogram_overlap(stats: Dict) -> float:
    """``∫ min(p⁺, p⁻) dx`` of the two normalised histograms."""
    width = np.diff(stats['edges'])
    p = stats['pos']['hist'] / (stats['pos']['count'] * width)
    q = stats['neg']['hist'] / (stats['neg']['count'] * width)
    return float((np.minimum(p, q) * width).sum())


def _loader_cfg(cfg: Config, split: str) -> dict:
    if split == 'train' and cfg.get('cluster_dataloader') is not None:
        return copy.deepcopy(cfg.cluster_dataloader)
    loader = copy.deepcopy(cfg.test_dataloader)
    loader['dataset']['split'] = split
    return loader


def features_of(config: str,
                checkpoint: str,
                split: str,
                device: str,
                cfg_options: Optional[dict],
                with_camids: bool = False) -> Dict:
    """Features (dataset order), pids (and camera ids) of one model on one
    split.

    Raises:
        ConfigOptionError: A bad ``cfg_options`` entry (a ``ValueError``).
    """
    cfg = run_setup.load_tool_config(config, cfg_options)
    model = init_model(cfg, checkpoint, device=device)
    loader = Runner.build_dataloader(_loader_cfg(cfg, split))
    encoder = model.test_cfg.get('encoder', 'student')
    feats, idx = extract_features(model, loader, encoder=encoder)
    ordered = torch.empty_like(feats)
    ordered[idx] = feats
    pids = np.asarray(loader.dataset.get_pids())
    keep = pids > 0
    if not keep.all():
        print_log(f'{int((~keep).sum())} distractor/junk images (pid <= 0) '
                  'left out', logger='current')
    out = dict(feats=ordered.cpu()[torch.from_numpy(keep)], pids=pids[keep])
    if with_camids:
        out['camids'] = np.asarray(loader.dataset.get_camids())[keep]
    return out


def draw(panels: List[Dict], out: str, split: str, distance: str) -> None:
    """One panel per model: both histograms, fitted Gaussians, overlaps."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        st = panel['stats']
        edges = st['edges']
        centres = (edges[:-1] + edges[1:]) / 2
        width = np.diff(edges)
        xs = np.linspace(edges[0], edges[-1], 501)
        for key, color, name in (('pos', POS_COLOR, 'positive'),
                                 ('neg', NEG_COLOR, 'negative')):
            s = st[key]
            density = s['hist'] / (s['count'] * width)
            ax.bar(centres, density, width=width, color=color, alpha=0.45,
                   label=f"{name} ({s['count']:,} pairs): "
                   f"μ={s['mean']:.3f}, σ={np.sqrt(s['var']):.3f}")
            ax.plot(xs, _gauss(xs, s['mean'], s['var']), color=color, lw=1.5,
                    ls='--')
        ax.set_title(f"{panel['title']}\nGaussian overlap "
                     f"{panel['gaussian_overlap']:.3f}, histogram overlap "
                     f"{panel['histogram_overlap']:.3f}", fontsize=9)
        ax.set_xlabel(f'distance ({distance}, in [0, 1])')
        ax.set_ylabel('density')
        ax.set_xlim(edges[0], edges[-1])
        ax.legend(fontsize=7, loc='upper right')
    fig.suptitle(f'pair distances on the {split} split (dashed: fitted '
                 'Gaussians)', fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> List[Dict]:
    """Extract, measure, draw; returns the per-model statistics."""
    args = parse_args(argv)
    panels = []
    pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
    for i, (config, ckpt) in enumerate(pairs):
        data = features_of(config, ckpt, args.split, args.device,
                           args.cfg_options)
        stats = pair_distance_stats(
            data['feats'],
            data['pids'],
            args.bins,
            args.distance,
            value_range=args.range)
        p, q = stats['pos'], stats['neg']
        panel = dict(
            title=args.titles[i] if args.titles else osp.basename(ckpt),
            config=config,
            checkpoint=ckpt,
            stats=stats,
            gaussian_overlap=gaussian_overlap(p['mean'], p['var'], q['mean'],
                                              q['var']),
            histogram_overlap=histogram_overlap(stats))
        print_log(
            f"{panel['title']}: positive μ={p['mean']:.4f} σ="
            f"{np.sqrt(p['var']):.4f} ({p['count']} pairs), negative μ="
            f"{q['mean']:.4f} σ={np.sqrt(q['var']):.4f} ({q['count']} "
            f"pairs), Gaussian overlap {panel['gaussian_overlap']:.4f}, "
            f"histogram overlap {panel['histogram_overlap']:.4f}",
            logger='current')
        panels.append(panel)
    draw(panels, args.out, args.split, args.distance)
    summary = [
        dict(
            title=p['title'],
            config=p['config'],
            checkpoint=p['checkpoint'],
            split=args.split,
            distance=args.distance,
            gaussian_overlap=p['gaussian_overlap'],
            histogram_overlap=p['histogram_overlap'],
            **{
                f'{k}_{m}': p['stats'][k][m]
                for k in ('pos', 'neg') for m in ('mean', 'var', 'count')
            }) for p in panels
    ]
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(summary, f, indent=2)
    print_log(f'Distance distributions saved to {args.out}',
              logger='current')
    return summary


if __name__ == '__main__':
    try:
        main()
    except ValueError as err:
        sys.exit(f'plot_distance_distributions.py: error: {err}')
