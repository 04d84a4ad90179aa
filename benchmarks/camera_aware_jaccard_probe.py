# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Would k-reciprocal sets split by camera give cross-camera clusters?

A dense PROTOTYPE (N x N arrays, for N up to ~10k images), not a component:
the diagnostic behind the camera-aware row of the GDS section of
``docs/benchmarks.md``. The idea is CA-Jaccard's (Chen et al., "CA-Jaccard:
Camera-aware Jaccard Distance for Person Re-identification", CVPR 2024,
https://arxiv.org/abs/2311.10605): an image's k-reciprocal set is the union
of its k-reciprocal neighbours among the images of its OWN camera
(``k_intra``) and among the images of the OTHER cameras (``k_inter``), so
that a camera does not crowd the other cameras out of the set. Here, in a
simplified form: no k1/2 expansion step, plain top-k2 query expansion,
then the Jaccard distance of the encodings as in
:class:`~mmreid_usl.clustering.JaccardDistance`; ``k_inter = 0`` is the
camera-agnostic baseline with ``k1 = k_intra``. eps is the mean of the
smallest ρ fraction of the pairwise distances (Theory's rule), DBSCAN
min_samples 4, and every row is scored with
:func:`~mmreid_usl.clustering.cluster_stats` against the true ids and
cameras (diagnostics only).

Usage::

    python benchmarks/camera_aware_jaccard_probe.py CONFIG CHECKPOINT \\
        [--settings 15,0 5,10 3,10] [--rho 1.6e-3 3.2e-3]

The last line printed is a JSON list of the rows.
"""
import argparse
import importlib.util
import json
import os.path as osp
from typing import List

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.logging import print_log
from sklearn.cluster import DBSCAN

from mmreid_usl.clustering import cluster_stats

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _reciprocal(dist: np.ndarray, k: int) -> np.ndarray:
    """Boolean k-reciprocal relation of a dense distance (inf = excluded)."""
    n = len(dist)
    k = min(k, n - 1)
    top = np.argpartition(dist, k, axis=1)[:, :k + 1]
    near = np.zeros((n, n), dtype=bool)
    near[np.repeat(np.arange(n), k + 1), top.ravel()] = True
    near &= np.isfinite(dist)
    return near & near.T


def camera_split_jaccard(feats: torch.Tensor, camids: np.ndarray,
                         k_intra: int, k_inter: int, k2: int) -> np.ndarray:
    """Dense Jaccard distance with camera-split k-reciprocal sets."""
    x = torch.nn.functional.normalize(feats.double(), dim=1)
    d2 = (2 - 2 * x @ x.t()).clamp(min=0).numpy()
    same = camids[:, None] == camids[None, :]
    rel = _reciprocal(np.where(same, d2, np.inf), k_intra)
    if k_inter > 0:
        rel |= _reciprocal(np.where(same, np.inf, d2), k_inter)
    np.fill_diagonal(rel, True)
    enc = np.where(rel, np.exp(-d2), 0.0)
    enc /= enc.sum(1, keepdims=True)
    if k2 > 1:
        nearest = np.argsort(d2, axis=1)[:, :k2]
        enc = enc[nearest].mean(1)
    v = torch.from_numpy(enc)
    l1 = torch.cdist(v, v, p=1)
    s = v.sum(1)
    # sum(min) and sum(max) of every pair from the sums and the L1 distance
    smin = (s[:, None] + s[None, :] - l1) / 2
    smax = (s[:, None] + s[None, :] + l1) / 2
    return (1 - smin / smax).clamp(min=0).numpy()


def _features_tool():
    """``features_of`` of tools/analysis_tools/plot_distance_distributions.py
    (a script, not a package module)."""
    path = osp.join(REPO, 'tools', 'analysis_tools',
                    'plot_distance_distributions.py')
    spec = importlib.util.spec_from_file_location('_plot_dd', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> List[dict]:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--settings',
        nargs='+',
        default=['15,0', '5,10', '3,10', '5,20'],
        help='k_intra,k_inter pairs (k_inter 0: camera-agnostic)')
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument(
        '--rho', type=float, nargs='+', default=[1.6e-3, 3.2e-3])
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config (key=value)')
    args = parser.parse_args()
    from mmreid_usl.engine.checkpointing import setup_runtime
    from mmreid_usl.utils import register_all_modules
    setup_runtime()
    register_all_modules(init_default_scope=False)
    # the training split's features in dataset order, extracted as the
    # analysis tools do (the cluster loader's pipeline, the test feature)
    got = _features_tool().features_of(
        args.config,
        args.checkpoint,
        'train',
        args.device,
        args.cfg_options,
        with_camids=True)
    feats, pids, camids = got['feats'], got['pids'], got['camids']
    n = len(feats)
    upper = np.triu_indices(n, 1)
    rows = []
    for setting in args.settings:
        k_intra, k_inter = (int(v) for v in setting.split(','))
        dist = camera_split_jaccard(feats, camids, k_intra, k_inter, args.k2)
        pairs = np.sort(dist[upper])
        for rho in args.rho:
            eps = float(pairs[:max(1, int(round(rho * len(pairs))))].mean())
            labels = DBSCAN(
                eps=eps, min_samples=4,
                metric='precomputed').fit_predict(dist)
            stats = cluster_stats(labels, pids, camids)
            row = dict(
                k_intra=k_intra,
                k_inter=k_inter,
                rho=rho,
                eps=eps,
                clusters=int(labels.max()) + 1,
                outliers=int((labels < 0).sum()),
                **{
                    k: float(stats[k])
                    for k in ('ari', 'pair_precision', 'pair_recall',
                              'cross_camera_recall', 'single_camera_clusters')
                })
            rows.append(row)
            print_log(
                ' '.join(f'{k}={v:.4g}' if isinstance(v, float) else
                         f'{k}={v}' for k, v in row.items()),
                logger='current')
    print(json.dumps(rows))
    return rows


if __name__ == '__main__':
    main()
