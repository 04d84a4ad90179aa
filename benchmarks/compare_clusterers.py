# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cluster a model's real training-set features with DBSCAN and Infomap.

Diagnostic behind the "Infomap vs DBSCAN on real features" table of
``docs/benchmarks.md``: the features of the config's ``cluster_dataloader``
(the training split, test pipeline) are extracted once with
:func:`mmreid_usl.apis.extract_features`, then clustered by DBSCAN on the
k-reciprocal Jaccard distance and by Infomap with several settings; each row
gives clusters, outliers and NMI/ARI against the true ids
(:func:`mmreid_usl.clustering.cluster_stats`, diagnostics only).

Usage::

    # ImageNet initialisation (the config's init_cfg)
    python benchmarks/compare_clusterers.py configs/ice/ice_mbv2_cuhk03.py
    # a trained checkpoint
    python benchmarks/compare_clusterers.py configs/ice/ice_mbv2_cuhk03.py \\
        work_dirs/ice_mbv2_cuhk03/epoch_10.pth --encoder momentum

The last line printed is a JSON list of the rows.
"""
import argparse
import json
import time

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmreid_usl.apis import extract_features, init_model
from mmreid_usl.clustering import PseudoLabeler, cluster_stats
from mmreid_usl.utils.deprecation import DeprecatedFlagAction

INFOMAP_SETTINGS = [(15, 0.5), (15, 0.6), (15, 0.7), (8, 0.5)]  # (k, min_sim)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument(
        'checkpoint', nargs='?', help='omit to use the init_cfg weights')
    parser.add_argument(
        '--encoder',
        '--source',
        action=DeprecatedFlagAction,
        deprecated=['--source'],
        default='momentum',
        choices=['student', 'momentum'],
        help='encoder whose features are clustered (--source is its '
        'deprecated spelling)')
    parser.add_argument('--k1', type=int, default=15)
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument('--eps', type=float, default=0.6)
    parser.add_argument('--min-samples', type=int, default=4)
    args = parser.parse_args()

    cfg = Config.fromfile(args.config)
    model = init_model(cfg, args.checkpoint)
    if args.checkpoint is None:
        model.init_weights()  # e.g. the ImageNet MobileNetV2 of init_cfg
    loader = Runner.build_dataloader(cfg.cluster_dataloader)
    feats, idx = extract_features(model, loader, encoder=args.encoder)
    order = torch.argsort(idx)
    feats, idx = feats[order], idx[order]
    true_ids = [loader.dataset.get_data_info(int(i))['pid'] for i in idx]

    rows = []

    def report(name: str, labels, seconds: float) -> None:
        row = dict(clusterer=name, seconds=round(seconds, 2),
                   **cluster_stats(labels, true_ids))
        rows.append(row)
        print(row, flush=True)  # noqa: T201 (benchmark output)

    # the same PseudoLabeler the PseudoLabelHook runs (eps pruning
    # included); degenerate clusterings are reported, not raised
    settings = [(f'DBSCAN eps={args.eps} on Jaccard k1={args.k1} '
                 f'k2={args.k2}',
                 dict(
                     distance=dict(
                         type='JaccardDistance', k1=args.k1, k2=args.k2),
                     clusterer=dict(
                         type='DBSCANClusterer',
                         eps=args.eps,
                         min_samples=args.min_samples)))]
    settings += [(f'Infomap k={k} min_sim={min_sim}',
                  dict(
                      distance=None,
                      clusterer=dict(
                          type='InfomapClusterer', k=k, min_sim=min_sim)))
                 for k, min_sim in INFOMAP_SETTINGS]
    for name, labeler_cfg in settings:
        labeler = PseudoLabeler(
            **labeler_cfg, min_clusters=0, on_degenerate='skip')
        start = time.perf_counter()
        result = labeler(feats, cluster_encoder=args.encoder)
        report(name, result.labels.cpu(), time.perf_counter() - start)
    print(json.dumps(rows))  # noqa: T201 (benchmark output)


if __name__ == '__main__':
    main()
