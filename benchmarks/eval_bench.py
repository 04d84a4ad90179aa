# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Benchmark of the chunked ReID evaluation (issue 5).

Examples::

    python benchmarks/eval_bench.py --nq 3368 --ng 15913              # Market
    python benchmarks/eval_bench.py --nq 11659 --ng 82161 --ids 3060  # MSMT17
    python benchmarks/eval_bench.py --nq 3368 --ng 15913 --reference

Synthetic features of ``synthetic_features.py`` with noise norm 3.5 (so mAP
is not saturated); the first ``nq`` samples (random order) are the queries,
the rest the gallery. The last printed line is one JSON object with
``total_s`` (distance + ranking + mAP + CMC + mINP), ``peak_rss_gb`` (whole
process, feature generation included), ``mAP``, ``R1``, ``R5``, ``R10``,
``mINP`` (percent). ``--reference`` runs a straightforward open-reid-style
evaluator instead: the full Q×G distance matrix, a full argsort per query,
sklearn ``average_precision_score`` per query.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _bench_utils import (add_gallery_args, load_average,  # noqa: E402
                          peak_rss_gb, query_gallery, repeat_in_children)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_gallery_args(parser)
    parser.add_argument('--chunk-size', type=int, default=None)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--reference', action='store_true')
    parser.add_argument('--repeat', type=int, default=1,
                        help='runs in fresh processes; medians reported')
    return parser.parse_args(argv)


def reference_eval(qf, gf, q_pids, g_pids, q_cams, g_cams):
    """open-reid style: dense distances, argsort, sklearn AP per query."""
    import numpy as np
    from sklearn.metrics import average_precision_score
    t = time.perf_counter()
    dist = (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)[None] -
            2 * qf @ gf.t()).numpy()
    dist_s = time.perf_counter() - t
    indices = np.argsort(dist, axis=1)
    matches = g_pids[indices] == q_pids[:, None]
    aps, inps, cmc = [], [], np.zeros(50)
    for i in range(len(q_pids)):
        valid = ((g_pids[indices[i]] != q_pids[i]) |
                 (g_cams[indices[i]] != q_cams[i]))
        m = matches[i, valid]
        if not m.any():
            continue
        aps.append(average_precision_score(m, -dist[i][indices[i]][valid]))
        hits = np.flatnonzero(m)
        if hits[0] < 50:
            cmc[hits[0]:] += 1
        inps.append(len(hits) / (hits[-1] + 1))
    n = len(aps)
    return dict(mAP=float(np.mean(aps)), mINP=float(np.mean(inps)),
                cmc=cmc / n, num_valid=n, dist_s=dist_s)


def main(argv=None):
    args = parse_args(argv)
    if repeat_in_children(__file__, argv, args.repeat):
        return
    import torch

    from mmreid_usl.evaluation import evaluate_rank

    load = load_average()
    t = time.perf_counter()
    qf, gf, q_pids, g_pids, q_cams, g_cams = query_gallery(args)
    gen_s = time.perf_counter() - t
    result = dict(nq=args.nq, ng=args.ng, ids=args.ids, cams=args.cams,
                  dim=args.dim, reference=args.reference,
                  threads=torch.get_num_threads(), load_avg_start=load,
                  gen_s=gen_s)
    c0, t0 = time.process_time(), time.perf_counter()
    if args.reference:
        out = reference_eval(qf, gf, q_pids, g_pids, q_cams, g_cams)
        result['dist_s'] = out['dist_s']
    else:
        out = evaluate_rank(qf, gf, q_pids, g_pids, q_cams, g_cams,
                            chunk_size=args.chunk_size, device=args.device)
    total = time.perf_counter() - t0
    result['total_cpu_s'] = time.process_time() - c0
    cmc = [float(c) for c in out['cmc']]
    result.update(
        total_s=total, peak_rss_gb=peak_rss_gb(), mAP=out['mAP'] * 100,
        R1=cmc[0] * 100, R5=cmc[4] * 100, R10=cmc[9] * 100,
        mINP=out['mINP'] * 100, num_valid=out['num_valid'],
        load_avg_end=load_average())
    sys.stderr.write(f"total_s {total:.3f}  peak_rss_gb "
                     f"{result['peak_rss_gb']:.3f}  mAP {result['mAP']:.2f}"
                     f"  R1 {result['R1']:.2f}\n")
    print(json.dumps(result))


if __name__ == '__main__':
    main()
