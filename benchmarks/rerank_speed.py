# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Time and peak memory of test-time k-reciprocal re-ranking (issue 12).

Examples::

    python benchmarks/rerank_speed.py --nq 11659 --ng 82161 --ids 3060 \\
        --cams 15                                   # MSMT17 test size
    python benchmarks/rerank_speed.py --nq 3368 --ng 15913   # Market size

Synthetic features of ``synthetic_features.py`` (noise norm 3.5, as
``eval_bench.py``); the first ``nq`` samples (random order) are the queries,
the rest the gallery. :func:`k_reciprocal_rerank` (k1 = 20, k2 = 6,
lambda = 0.3) is built, then :func:`evaluate_rank` ranks with the re-ranked
distance. The last printed line is one JSON object with ``rerank_s`` (kNN
pass + encoding + Jaccard), ``eval_s`` (ranking with the re-ranked
distance), ``total_s``, ``peak_rss_gb`` (whole process, feature generation
included), the re-ranked ``mAP``/``R1`` and, with ``--plain``, the mAP/R1
without re-ranking.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _bench_utils import (add_gallery_args, load_average,  # noqa: E402
                          peak_rss_gb, query_gallery)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_gallery_args(parser)
    parser.add_argument('--k1', type=int, default=20)
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument('--lambda-value', type=float, default=0.3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--plain', action='store_true',
                        help='also evaluate without re-ranking')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    from mmengine.logging import MMLogger

    from mmreid_usl.evaluation import evaluate_rank
    from mmreid_usl.evaluation.functional import k_reciprocal_rerank

    MMLogger.get_instance('rerank_speed', log_level='INFO')
    load = load_average()
    t = time.perf_counter()
    qf, gf, q_pids, g_pids, q_cams, g_cams = query_gallery(args)
    result = dict(nq=args.nq, ng=args.ng, ids=args.ids, cams=args.cams,
                  dim=args.dim, k1=args.k1, k2=args.k2,
                  lambda_value=args.lambda_value,
                  threads=torch.get_num_threads(), load_avg_start=load,
                  gen_s=time.perf_counter() - t)
    c0, t0 = time.process_time(), time.perf_counter()
    rr = k_reciprocal_rerank(qf, gf, k1=args.k1, k2=args.k2,
                             lambda_value=args.lambda_value)
    t1 = time.perf_counter()
    out = evaluate_rank(qf, gf, q_pids, g_pids, q_cams, g_cams, dist_fn=rr)
    t2 = time.perf_counter()
    result.update(
        rerank_s=t1 - t0, eval_s=t2 - t1, total_s=t2 - t0,
        total_cpu_s=time.process_time() - c0, peak_rss_gb=peak_rss_gb(),
        jaccard_pairs=int(rr.jaccard.nnz), mAP=out['mAP'] * 100,
        R1=float(out['cmc'][0]) * 100, load_avg_end=load_average())
    if args.plain:
        plain = evaluate_rank(qf, gf, q_pids, g_pids, q_cams, g_cams)
        result.update(plain_mAP=plain['mAP'] * 100,
                      plain_R1=float(plain['cmc'][0]) * 100)
    sys.stderr.write(
        f"rerank_s {result['rerank_s']:.1f}  eval_s {result['eval_s']:.1f}  "
        f"peak_rss_gb {result['peak_rss_gb']:.2f}  mAP {result['mAP']:.2f}"
        f"\n")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
