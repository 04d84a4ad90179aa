# Copyright (c) mmreid_usl contributors. All rights reserved.
"""How well do a checkpoint's features link a person across cameras?

Usage::

    python tools/analysis_tools/camera_link_stats.py CONFIG CHECKPOINT \
        [--split train|test|query|gallery] [--k 1 5] [--out-json stats.json] \
        [--cfg-options ...]

Clustering-based re-identification can only give a person one pseudo-label
across cameras if the features put that person's images from different
cameras near each other. This tool measures that with the true ids of a
split (diagnostics only; nothing here is used for training), for the
L2-normalised features of the model's ``test_cfg.encoder`` encoder:

- ``intra_camera_precision@k``: among each image's k nearest images of
  the SAME camera (itself excluded), the fraction with its id;
- ``cross_camera_precision@k``: among each image's k nearest images of
  OTHER cameras, the fraction with its id (images whose id no other camera
  saw are left out: they have no right answer);
- ``mutual_cross_camera_pairs`` / ``mutual_cross_camera_precision``: pairs
  of images of different cameras that are each other's nearest
  other-camera image, and the fraction of them that are one person;
- ``centroid_match_accuracy``: the best case for any clustering that keeps
  cameras apart: the true (id, camera) groups are given, and each group's
  mean feature is matched to the nearest group mean of another camera; the
  fraction matched to their own id;
- ``cross_camera_positive_fraction``: the fraction of same-id pairs that
  are cross-camera (what a camera-pure clustering can never label).

Splits as in ``plot_distance_distributions.py`` (``train`` is the
``cluster_dataloader`` when the config has one). Rows are processed in
chunks, so a Market/MSMT17-size split needs no N x N matrix at once.
"""
import argparse
import importlib.util
import json
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from mmreid_usl.engine.checkpointing import run_setup
from mmreid_usl.utils.search import topk_search

SPLITS = ('test', 'query', 'gallery', 'train')


def _nearest(x: torch.Tensor, cams: torch.Tensor, k: int, same: bool,
             chunk_size: int) -> torch.Tensor:
    """Indices ``(N, k)`` of each row's k most similar rows of the same /
    other cameras (itself excluded); -1 where there are fewer than k."""

    def leave_out(s: int, e: int) -> torch.Tensor:
        out = cams[s:e, None] != cams[None, :]
        if not same:
            out = ~out
        out[torch.arange(e - s), torch.arange(s, e)] = True
        return out

    _, idx = topk_search(x,
                         x,
                         k,
                         metric='inner_product',
                         chunk_size=chunk_size,
                         exclude=leave_out)
    return idx


def camera_link_stats(feats: torch.Tensor,
                      pids: np.ndarray,
                      camids: np.ndarray,
                      ks: Sequence[int] = (1, 5),
                      chunk_size: int = 2048) -> Dict[str, float]:
    """The statistics of the module docstring.

    Args:
        feats (Tensor): ``(N, D)`` features (L2-normalised here).
        pids (np.ndarray): ``(N,)`` true ids.
        camids (np.ndarray): ``(N,)`` camera ids (at least two distinct).
        ks (Sequence[int]): The k of the precision figures.
        chunk_size (int): Rows per similarity chunk.

    Returns:
        dict[str, float]: Keyed as in the module docstring.
    """
    pids = np.asarray(pids)
    camids = np.asarray(camids)
    if not len(pids) == len(camids) == len(feats):
        raise ValueError(f'{len(feats)} features, {len(pids)} ids and '
                         f'{len(camids)} camera ids: they must match')
    if len(np.unique(camids)) < 2:
        raise ValueError('camera_link_stats needs images of at least two '
                         'cameras')
    x = F.normalize(feats.float(), dim=1).cpu()
    cam_t = torch.as_tensor(camids)
    pid_t = torch.as_tensor(pids)
    # Ids seen by more than one camera: only their images have a right
    # cross-camera answer.
    groups = np.unique(np.stack([pids, camids], 1), axis=0)
    gid, gcount = np.unique(groups[:, 0], return_counts=True)
    multi = np.isin(pids, gid[gcount > 1])
    out: Dict[str, float] = {}
    kmax = max(ks)
    for name, same, rows in (('intra', True, np.ones(len(pids), bool)),
                             ('cross', False, multi)):
        nn = _nearest(x, cam_t, kmax, same, chunk_size)
        hit = (pid_t[nn.clamp(min=0)] == pid_t[:, None]) & (nn >= 0)
        valid = nn >= 0
        r = torch.from_numpy(rows)
        for k in ks:
            num = valid[r, :k].sum().item()
            out[f'{name}_camera_precision@{k}'] = (
                hit[r, :k].sum().item() / num if num else float('nan'))
        if not same:
            first = nn[:, 0]
            ok = first >= 0
            back = torch.full_like(first, -1)
            back[ok] = first[first[ok]]
            mutual = ok & (back == torch.arange(len(first))) & (
                torch.arange(len(first)) < first)
            pairs = int(mutual.sum())
            out['mutual_cross_camera_pairs'] = pairs
            out['mutual_cross_camera_precision'] = (
                (pid_t[mutual] == pid_t[first[mutual]]).float().mean().item()
                if pairs else float('nan'))
    # Centroid matching of the true (id, camera) groups.
    key = pids.astype(np.int64) * (int(camids.max()) + 1) + camids
    uniq, inv = np.unique(key, return_inverse=True)
    cent = torch.zeros(len(uniq), x.shape[1]).index_add_(
        0, torch.from_numpy(inv), x)
    cent = F.normalize(cent, dim=1)
    g_pid = torch.as_tensor(uniq // (int(camids.max()) + 1))
    g_cam = torch.as_tensor(uniq % (int(camids.max()) + 1))
    g_nn = _nearest(cent, g_cam, 1, False, chunk_size)[:, 0]
    g_multi = torch.from_numpy(np.isin(g_pid.numpy(), gid[gcount > 1]))
    out['centroid_match_accuracy'] = (
        (g_pid[g_nn[g_multi]] == g_pid[g_multi]).float().mean().item()
        if g_multi.any() else float('nan'))
    # Fraction of same-id pairs that are cross-camera (pair counts).
    n_id = np.bincount(np.unique(pids, return_inverse=True)[1])
    n_grp = np.bincount(inv)
    same_pairs = float((n_id * (n_id - 1)).sum()) / 2
    same_cam_pairs = float((n_grp * (n_grp - 1)).sum()) / 2
    out['cross_camera_positive_fraction'] = (
        1 - same_cam_pairs / same_pairs if same_pairs else float('nan'))
    return out


def _distance_tool():
    """The split / feature helpers of plot_distance_distributions.py."""
    path = osp.join(osp.dirname(osp.abspath(__file__)),
                    'plot_distance_distributions.py')
    spec = importlib.util.spec_from_file_location('_plot_dd', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = run_setup.tool_parser(
        'Cross-camera linking statistics of a checkpoint')
    parser.add_argument('--split', choices=SPLITS, default='train')
    parser.add_argument('--k', type=int, nargs='+', default=[1, 5])
    parser.add_argument('--out-json', help='also write the statistics here')
    run_setup.add_device_arg(parser)
    run_setup.add_cfg_options_arg(
        parser, help='override settings of the config (key=value)')
    args = parser.parse_args(argv)
    if min(args.k) < 1:
        parser.error('--k values must be >= 1')
    return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    got = _distance_tool().features_of(
        args.config,
        args.checkpoint,
        args.split,
        args.device,
        args.cfg_options,
        with_camids=True)
    stats = camera_link_stats(got['feats'], got['pids'], got['camids'],
                              args.k)
    for key, val in stats.items():
        print_log(f'{key}: {val:.4f}' if isinstance(val, float) else
                  f'{key}: {val}', logger='current')
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(stats, f, indent=1)
    return stats


if __name__ == '__main__':
    main()
