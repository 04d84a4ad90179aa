# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Benchmark of pseudo-labelling: kNN -> sparse Jaccard -> DBSCAN (issue 5).

Examples::

    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751
    python benchmarks/pseudo_label_bench.py --n 32621 --ids 1041 --repeat 3
    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751 \
        --precision bf16 --compare-fp32
    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751 --reference

The last printed line is one JSON object with ``knn_s``, ``after_knn_s``
(Jaccard + DBSCAN), ``jaccard_s``, ``dbscan_s``, ``total_s`` (kNN + after),
``peak_rss_gb`` (peak of the whole process, feature generation included),
``num_clusters``, ``num_outliers``, ``ari`` (against the true ids, outliers
as singletons), and the process CPU seconds of the stages (``*_cpu_s``;
the machine is shared, so wall times depend on its load, which is recorded
as ``load_avg_*``). ``--reference`` runs the straightforward dense
re-implementation of the official pipeline instead (dense N×N V and Jaccard,
sklearn DBSCAN on the dense matrix) and then our sparse pipeline on the same
kNN, reporting whether the labels are identical.
"""
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
# The dense Jaccard oracle (--reference) is a test helper, not part of the
# package: one copy in tests/jaccard_reference.py, shared with the tests.
sys.path.insert(1, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                            'tests'))

from _bench_utils import load_average, peak_rss_gb, run_repeats  # noqa: E402
from synthetic_features import synthetic_features  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, required=True, help='images N')
    parser.add_argument('--ids', type=int, required=True, help='identities')
    parser.add_argument('--dim', type=int, default=2048)
    parser.add_argument('--knn', default='faiss', choices=['faiss', 'torch'])
    parser.add_argument('--precision', default='fp32',
                        choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--k1', type=int, default=30)
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument('--eps', type=float, default=0.6)
    parser.add_argument('--min-samples', type=int, default=4)
    parser.add_argument('--max-distance', type=float, default=1.0,
                        help='JaccardDistance(max_distance=...); any value '
                        '> eps gives the same labels with less memory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--reference', action='store_true',
                        help='run the dense official-style pipeline')
    parser.add_argument('--compare-fp32', action='store_true',
                        help='also report ARI of the labels vs an fp32 kNN')
    parser.add_argument('--repeat', type=int, default=1,
                        help='runs in fresh processes; medians reported')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    if args.repeat > 1:
        child = [a for i, a in enumerate(argv)
                 if a != '--repeat' and (i == 0 or argv[i - 1] != '--repeat')
                 and not a.startswith('--repeat=')]
        print(json.dumps(run_repeats(osp.abspath(__file__), child,
                                     args.repeat)))
        return
    import torch
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from mmreid_usl.clustering import (DBSCANClusterer, JaccardDistance,
                                       cluster_stats, knn_search)
    from jaccard_reference import dense_jaccard_reference  # from tests/

    load = load_average()
    t = time.perf_counter()
    feats_np, pids, _ = synthetic_features(
        args.n, args.ids, dim=args.dim, seed=args.seed)
    feats = torch.from_numpy(feats_np).to(args.device)
    gen_s = time.perf_counter() - t
    knn_backend = 'torch' if args.precision != 'fp32' else args.knn
    result = dict(n=args.n, ids=args.ids, dim=args.dim, knn=knn_backend,
                  max_distance=args.max_distance,
                  precision=args.precision, eps=args.eps,
                  threads=torch.get_num_threads(), load_avg_start=load,
                  gen_s=gen_s)

    c0, t0 = time.process_time(), time.perf_counter()
    sqdist, index = knn_search(feats, args.k1, backend=knn_backend,
                               precision=args.precision)
    if feats.is_cuda:
        torch.cuda.synchronize()
    c1, t1 = time.process_time(), time.perf_counter()
    if args.reference:
        dist = dense_jaccard_reference(feats_np, index.cpu().numpy(),
                                       k1=args.k1, k2=args.k2)
        t2 = time.perf_counter()
        labels = DBSCAN(eps=args.eps, min_samples=args.min_samples,
                        metric='precomputed', n_jobs=-1).fit_predict(dist)
        t3 = time.perf_counter()
        del dist
    else:
        # no pair budget: this benchmark measures what the pairs cost
        jaccard = JaccardDistance(k1=args.k1, k2=args.k2,
                                  knn_precision=args.precision,
                                  max_distance=args.max_distance,
                                  max_pairs=None)
        dist = jaccard.from_knn(feats, sqdist, index)
        t2 = time.perf_counter()
        labels = DBSCANClusterer(eps=args.eps,
                                 min_samples=args.min_samples)(dist=dist)
        t3 = time.perf_counter()
        result['stored_pairs_per_row'] = dist.nnz / args.n
        del dist
    c3 = time.process_time()
    result.update(
        knn_cpu_s=c1 - c0, after_knn_cpu_s=c3 - c1,
        knn_s=t1 - t0, jaccard_s=t2 - t1, dbscan_s=t3 - t2,
        after_knn_s=t3 - t1, total_s=t3 - t0, peak_rss_gb=peak_rss_gb())
    stats = cluster_stats(labels, pids)
    result.update(num_clusters=stats['num_clusters'],
                  num_outliers=stats['num_outliers'], ari=stats['ari'],
                  nmi=stats['nmi'])
    if args.reference:
        # our sparse pipeline on the same kNN: labels must be identical
        ours = DBSCANClusterer(eps=args.eps, min_samples=args.min_samples)(
            dist=JaccardDistance(k1=args.k1, k2=args.k2).from_knn(
                feats, sqdist, index))
        result.update(
            ours_num_clusters=int(ours.max()) + 1,
            labels_identical=bool((ours == labels).all()),
            ari_ours_vs_reference=float(adjusted_rand_score(labels, ours)))
    if args.compare_fp32 and args.precision != 'fp32':
        sq32, idx32 = knn_search(feats, args.k1, backend='auto')
        lab32 = DBSCANClusterer(eps=args.eps, min_samples=args.min_samples)(
            dist=JaccardDistance(k1=args.k1, k2=args.k2).from_knn(
                feats, sq32, idx32))
        result['ari_vs_fp32'] = float(adjusted_rand_score(lab32, labels))
        result['num_clusters_fp32'] = int(lab32.max()) + 1
    result['load_avg_end'] = load_average()
    for key in ('knn_s', 'jaccard_s', 'dbscan_s', 'after_knn_s', 'total_s',
                'peak_rss_gb'):
        sys.stderr.write(f'{key:>12}: {result[key]:.3f}\n')
    print(json.dumps(result))


if __name__ == '__main__':
    main()
