# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Draw the ranked gallery of a few test queries.

Usage::

    python tools/analysis_tools/visualize_ranklist.py CONFIG CHECKPOINT \
        [--num-queries 8] [--topk 10] [--out ranklist.png] \
        [--encoder student|momentum] [--seed 0] [--cfg-options ...]

Features of the test split (query ∪ gallery, the config's
``test_dataloader``) are extracted with :func:`mmreid_usl.apis.init_model`
and :func:`mmreid_usl.apis.extract_features`. For each randomly chosen query
the gallery is ranked by the squared Euclidean distance of the
L2-normalised features, ``d(q, g) = ||q - g||² = 2 - 2 q·g``, after removing
the gallery images of the same person AND the same camera (Market-1501
protocol, as in evaluation). One row per query: the query image, then the
top-k gallery images framed in green (same person) or red (another person),
with the distance, camera and person id under each. The title gives mAP /
Rank-1 of the whole test split. A checkpoint that lacks weights of the
encoder that produces the features (or has another architecture) is an
error naming the keys, not a rank list of a random encoder.
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmreid_usl.apis import extract_features, init_model
from mmreid_usl.engine.checkpointing import CheckpointMismatchError
from mmreid_usl.engine.checkpointing import run_setup
from mmreid_usl.evaluation import evaluate_rank
from mmreid_usl.utils.cfg_options import ConfigOptionError
from mmreid_usl.utils.search import topk_search
from mmreid_usl.visualization import RankItem, RankRow
from mmreid_usl.visualization import draw_ranklist as render_ranklist


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = run_setup.tool_parser(
        'Visualise the ranked gallery of test queries')
    parser.add_argument(
        '--num-queries', type=int, default=8, help='queries (rows) to draw')
    parser.add_argument(
        '--topk', type=int, default=10, help='gallery images per query')
    parser.add_argument(
        '--out', default='ranklist.png', help='output image file')
    run_setup.add_encoder_arg(
        parser, 'encoder whose features rank the gallery (default: the '
        "config's model.test_cfg.encoder)")
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the query choice')
    run_setup.add_device_arg(parser)
    run_setup.add_cfg_options_arg(parser)
    return parser.parse_args(argv)


def rank_gallery(q_feats: torch.Tensor, g_feats: torch.Tensor,
                 q_pids: np.ndarray, g_pids: np.ndarray, q_cams: np.ndarray,
                 g_cams: np.ndarray, topk: int) -> List[Dict[str, np.ndarray]]:
    """Top-k gallery of each query under the Market-1501 protocol.

    The gallery images of the query's person seen by the query's camera are
    left out, as in evaluation; the others are ranked by
    :func:`mmreid_usl.utils.search.topk_search` (squared Euclidean, ties in
    gallery order).

    Args:
        q_feats (Tensor): ``(Q, D)`` L2-normalised query features.
        g_feats (Tensor): ``(G, D)`` L2-normalised gallery features.
        q_pids, g_pids, q_cams, g_cams (np.ndarray): Person / camera ids.
        topk (int): Gallery images kept per query.

    Returns:
        list[dict]: Per query ``index`` (gallery positions, nearest first),
        ``dist`` (squared Euclidean distances) and ``match`` (bool, same
        person); fewer than ``topk`` entries if the valid gallery is smaller.
        ``num_matches`` counts the correct matches in the whole valid
        gallery (what the top-k could find at best).
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_cams, g_cams = np.asarray(q_cams), np.asarray(g_cams)
    same_pid = torch.from_numpy(q_pids[:, None] == g_pids[None])
    junk = same_pid & torch.from_numpy(q_cams[:, None] == g_cams[None])
    dist, index = topk_search(q_feats.float().cpu(),
                              g_feats.float().cpu(),
                              topk,
                              metric='sqeuclidean',
                              exclude=lambda s, e: junk[s:e],
                              stable=True)
    ranks = []
    for i in range(len(q_pids)):
        keep = index[i] >= 0
        order = index[i][keep].numpy()
        ranks.append(
            dict(
                index=order,
                dist=dist[i][keep].clamp(min=0).numpy(),
                match=g_pids[order] == q_pids[i],
                num_matches=int((same_pid[i] & ~junk[i]).sum())))
    return ranks


def draw_ranklist(queries: List[dict],
                  topk: int,
                  out: str,
                  title: str = '') -> None:
    """Draw one row per query and save the figure.

    Args:
        queries (list[dict]): Per query ``img_path``, ``pid``, ``camid``,
            ``num_matches`` (optional) and ``gallery``: a list of dicts
            with ``img_path``, ``pid``, ``camid``, ``dist`` and ``match``.
        topk (int): Number of gallery columns (unused: the longest row).
        out (str): Output file (format from its suffix).
        title (str): Figure title.
    """
    rows = []
    for query in queries:
        hits = sum(bool(g['match']) for g in query['gallery'])
        total = query.get('num_matches')
        of_total = '' if total is None else f' ({total} in gallery)'
        rows.append(
            RankRow(
                query['img_path'], f"id {query['pid']}  cam "
                f"{query['camid'] + 1}\n"
                f"{hits}/{len(query['gallery'])} correct{of_total}", [
                    RankItem.matched(
                        item['img_path'], f"d={item['dist']:.3f}\n"
                        f"cam {item['camid'] + 1}  id {item['pid']}",
                        item['match']) for item in query['gallery']
                ]))
        of_total = '' if total is None else \
            f' ({total} correct matches in the gallery)'
        print_log(
            f"query {query['img_path']}: {hits}/{len(query['gallery'])} "
            f'correct in the top-k{of_total}',
            logger='current')
    render_ranklist(rows, out, title)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Extract test features, rank the gallery and draw the rank lists."""
    args = parse_args(argv)
    if args.num_queries < 1 or args.topk < 1:
        raise ValueError('--num-queries and --topk must be >= 1')
    # --encoder: this encoder is the one checked in the checkpoint
    cfg = run_setup.load_tool_config(args.config, args.cfg_options,
                                     args.encoder)
    model = init_model(cfg, args.checkpoint, device=args.device)
    encoder = model.test_cfg.get('encoder', 'student')

    loader = Runner.build_dataloader(cfg.test_dataloader)
    dataset = loader.dataset
    feats, sample_idx = extract_features(model, loader, encoder=encoder)
    # back to dataset order (the loader may batch in any order)
    ordered = torch.empty_like(feats)
    ordered[sample_idx] = feats
    feats = ordered.cpu()

    pids, cams = np.asarray(dataset.get_pids()), np.asarray(
        dataset.get_camids())
    num_query = dataset.num_query
    if num_query == 0 or num_query == len(dataset):
        raise ValueError('test_dataloader must hold the test split '
                         "(query ∪ gallery, split='test').")
    q, g = slice(0, num_query), slice(num_query, len(dataset))
    metrics = evaluate_rank(feats[q], feats[g], pids[q], pids[g], cams[q],
                            cams[g])

    rng = np.random.default_rng(args.seed)
    chosen = np.sort(
        rng.choice(num_query, min(args.num_queries, num_query), replace=False))
    ranks = rank_gallery(feats[chosen], feats[g], pids[chosen], pids[g],
                         cams[chosen], cams[g], args.topk)
    queries = []
    for qi, rank in zip(chosen, ranks):
        gallery = []
        for gi, d, m in zip(rank['index'], rank['dist'], rank['match']):
            j = num_query + int(gi)
            gallery.append(
                dict(
                    img_path=dataset.get_data_info(j)['img_path'],
                    pid=int(pids[j]),
                    camid=int(cams[j]),
                    dist=float(d),
                    match=bool(m)))
        queries.append(
            dict(
                img_path=dataset.get_data_info(int(qi))['img_path'],
                pid=int(pids[qi]),
                camid=int(cams[qi]),
                num_matches=int(rank['num_matches']),
                gallery=gallery))
    title = (f'{osp.basename(args.checkpoint)} ({encoder} features): '
             f"mAP {100 * metrics['mAP']:.1f}%, "
             f"Rank-1 {100 * float(metrics['cmc'][0]):.1f}%\n"
             f'({num_query} queries, {len(dataset) - num_query} gallery); '
             'green = same id, red = other id, d = ||q - g||²')
    draw_ranklist(queries, args.topk, args.out, title)
    print_log(f'Rank list saved to {args.out}', logger='current')


if __name__ == '__main__':
    try:
        main()
    except (CheckpointMismatchError, ConfigOptionError) as err:
        sys.exit(f'visualize_ranklist.py: error: {err}')
