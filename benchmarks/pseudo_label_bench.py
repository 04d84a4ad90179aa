# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Benchmark of pseudo-labelling: kNN -> sparse Jaccard -> DBSCAN (issue 5).

Examples::

    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751
    python benchmarks/pseudo_label_bench.py --n 32621 --ids 1041 --repeat 3
    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751 \
        --precision bf16 --compare-fp32
    python benchmarks/pseudo_label_bench.py --n 12936 --ids 751 --reference
    python benchmarks/pseudo_label_bench.py --n 20000 --ids 1000 --dim 256 \
        --knn ivf --compare-exact
    python benchmarks/pseudo_label_bench.py --n 20000 --ids 1000 --dim 256 \
        --world-size 2 --compare-single

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

Issue 26: ``--knn ivf`` (= ``--backend ivf``) uses the approximate faiss IVF
search (:func:`approx_knn_search`; ``recall_at_k`` of ``--recall-queries``
sampled rows against their exact kNN; ``--compare-exact`` also runs the exact
pipeline: ``exact_total_s``, ``ari_vs_exact``, outliers as singletons).
``--world-size W`` writes the features to a temporary ``.npy`` and starts W
gloo processes on this machine, each reading only its rows
(``knn_shard_bounds``) and running :func:`sharded_pseudo_labels`; per-rank
stage times and peak RSS are reported (``peak_rss_gb`` = the maximum over
ranks); ``--compare-single``
then runs the one-process pipeline in a fresh process
(``same_labels_as_single_process``, ``single_peak_rss_gb``). Identical labels
need the same faiss thread count in both (``--knn-threads``, default the
parent's torch threads).

``--jaccard-device`` picks the path after the kNN
(``JaccardDistance(jaccard_device=...)``): ``cpu`` (the default here, the
numpy/scipy path that the documented rows measured), ``cuda`` / ``auto``
the torch path of ``clustering/jaccard_torch.py`` on the GPU (``auto``: when
``--device cuda``), ``torch`` that path on the features' device;
``jaccard_s`` then times it (host transfers included).
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

from _bench_utils import (load_average, peak_rss_gb,  # noqa: E402
                          repeat_in_children)
from synthetic_features import synthetic_features  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, required=True, help='images N')
    parser.add_argument('--ids', type=int, required=True, help='identities')
    parser.add_argument('--dim', type=int, default=2048)
    parser.add_argument('--knn', default='faiss',
                        choices=['faiss', 'torch', 'ivf', 'hnsw'])
    parser.add_argument('--backend', choices=['exact', 'ivf', 'hnsw'],
                        help='exact = --knn faiss; ivf / hnsw = --knn ivf / '
                        'hnsw')
    parser.add_argument('--ivf-type', default='ivf_flat',
                        choices=['ivf_flat', 'ivf_pq'])
    parser.add_argument('--nlist', type=int)
    parser.add_argument('--nprobe', type=int)
    parser.add_argument('--kmeans-iters', type=int, default=10,
                        help='k-means iterations of the IVF cells')
    parser.add_argument('--l2-cells', action='store_true',
                        help='IVF cells by L2 k-means instead of spherical '
                        'k-means (the default)')
    parser.add_argument('--recall-target', type=float, default=0.95)
    parser.add_argument('--hnsw-m', type=int, default=32)
    parser.add_argument('--ef-construction', type=int, default=80)
    parser.add_argument('--ef-search', type=int,
                        help='HNSW search list (default: calibrated)')
    parser.add_argument('--reverse', action='store_true',
                        help='merge every kNN list with its reverse '
                        'neighbours (approximate backends)')
    parser.add_argument('--pca-dim', type=int)
    parser.add_argument('--whiten', action='store_true')
    parser.add_argument(
        '--camera-centred',
        action=argparse.BooleanOptionalAction,
        help='--knn ivf: cells built on the features minus their camera '
        'mean, candidates ranked in the original space '
        "(approx_knn_search(camids=...)); default on for --knn ivf, as "
        "JaccardDistance's camera_centred='auto' with a context's camera "
        'ids')
    parser.add_argument('--refine-iters', type=int,
                        help='neighbour-of-neighbour refinements of the '
                        'approximate kNN (approx_knn_search(refine_iters=); '
                        'default: two when its sampled recall is short of '
                        '--recall-target)')
    parser.add_argument('--max-nprobe', type=int,
                        help='largest nprobe of the calibration (default: '
                        'approx_knn_search\'s)')
    parser.add_argument('--refine-expand', type=int, default=5,
                        help='neighbours whose lists a refinement merges')
    parser.add_argument('--recall-queries', type=int, default=1000)
    parser.add_argument('--compare-exact', action='store_true')
    parser.add_argument('--world-size', type=int, default=1)
    parser.add_argument('--compare-single', action='store_true')
    parser.add_argument('--knn-threads', type=int,
                        help='faiss threads of the exact kNN (default: '
                        'torch threads of this process)')
    parser.add_argument('--save-labels', help=argparse.SUPPRESS)
    parser.add_argument('--precision', default='fp32',
                        choices=['fp32', 'bf16', 'fp16'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--jaccard-device', default='cpu',
                        choices=['cpu', 'auto', 'cuda', 'torch'],
                        help='JaccardDistance(jaccard_device=...): where '
                        'the steps after the kNN run (default: the '
                        'numpy/scipy CPU path)')
    parser.add_argument('--k1', type=int, default=30)
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument('--eps', type=float, default=0.6)
    parser.add_argument('--min-samples', type=int, default=4)
    parser.add_argument('--max-distance', type=float,
                        help='JaccardDistance(max_distance=...); any value '
                        '> eps gives the same labels with less memory. '
                        'Default eps + 1e-3, the radius the PseudoLabeler '
                        'passes in training; 1.0 stores every overlapping '
                        'pair (what the pairs cost, the issue-5 rows)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--noise-norm',
        type=float,
        default=1.4,
        help='norm of the isotropic noise of benchmarks/synthetic_features.py '
        '(default 1.4: same-id cosine ~0.31, the hard case for approximate '
        'kNN; 0.8: ~0.55)')
    parser.add_argument('--reference', action='store_true',
                        help='run the dense official-style pipeline')
    parser.add_argument('--compare-fp32', action='store_true',
                        help='also report ARI of the labels vs an fp32 kNN')
    parser.add_argument('--repeat', type=int, default=1,
                        help='runs in fresh processes; medians reported')
    args = parser.parse_args(argv)
    if args.backend:
        args.knn = 'faiss' if args.backend == 'exact' else args.backend
    if args.max_distance is None:
        args.max_distance = args.eps + 1e-3
    if args.camera_centred is None:
        args.camera_centred = args.knn == 'ivf'
    return args


def main(argv=None):
    args = parse_args(argv)
    if repeat_in_children(__file__, argv, args.repeat):
        return
    argv = sys.argv[1:] if argv is None else argv
    if args.world_size > 1:
        return _main_world(args, argv)
    import torch
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from mmreid_usl.clustering import (DBSCANClusterer, JaccardDistance,
                                       cluster_stats, knn_search)
    from jaccard_reference import dense_jaccard_reference  # from tests/

    load = load_average()
    t = time.perf_counter()
    feats_np, pids, camids = synthetic_features(
        args.n, args.ids, dim=args.dim, seed=args.seed,
        noise_norm=args.noise_norm)
    feats = torch.from_numpy(feats_np).to(args.device)
    gen_s = time.perf_counter() - t
    if args.knn_threads:
        import faiss
        faiss.omp_set_num_threads(args.knn_threads)
    knn_backend = 'torch' if args.precision != 'fp32' else args.knn
    result = dict(n=args.n, ids=args.ids, dim=args.dim,
                  noise_norm=args.noise_norm, knn=knn_backend,
                  camera_centred=args.camera_centred,
                  jaccard_device=args.jaccard_device,
                  max_distance=args.max_distance,
                  precision=args.precision, eps=args.eps,
                  threads=torch.get_num_threads(), load_avg_start=load,
                  gen_s=gen_s)

    c0, t0 = time.process_time(), time.perf_counter()
    ivf_info = {}
    if knn_backend in ('ivf', 'hnsw'):
        from mmreid_usl.clustering.approx_knn import approx_knn_search
        extra = dict(index_type=args.ivf_type, nlist=args.nlist,
                     nprobe=args.nprobe, pca_dim=args.pca_dim,
                     whiten=args.whiten,
                     kmeans_iters=args.kmeans_iters,
                     max_nprobe=args.max_nprobe,
                     spherical=not args.l2_cells,
                     camids=camids if args.camera_centred else None
                     ) if knn_backend == 'ivf' else dict(
                         index_type='hnsw', hnsw_m=args.hnsw_m,
                         ef_construction=args.ef_construction,
                         ef_search=args.ef_search)
        sqdist, index = approx_knn_search(
            feats, args.k1, recall_target=args.recall_target,
            reverse=args.reverse, refine_iters=args.refine_iters,
            refine_expand=args.refine_expand, seed=args.seed, info=ivf_info,
            **extra)
    else:
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
                                  max_pairs=None,
                                  jaccard_device=args.jaccard_device)
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
    if args.save_labels:
        import numpy as np
        np.save(args.save_labels, labels)
    stats = cluster_stats(labels, pids)
    result.update(num_clusters=stats['num_clusters'],
                  num_outliers=stats['num_outliers'], ari=stats['ari'],
                  nmi=stats['nmi'])
    if args.reference:
        # our sparse pipeline on the same kNN: labels must be identical
        ours = DBSCANClusterer(eps=args.eps, min_samples=args.min_samples)(
            dist=JaccardDistance(
                k1=args.k1, k2=args.k2,
                jaccard_device=args.jaccard_device).from_knn(
                    feats, sqdist, index))
        result.update(
            ours_num_clusters=int(ours.max()) + 1,
            labels_identical=bool((ours == labels).all()),
            ari_ours_vs_reference=float(adjusted_rand_score(labels, ours)))
    if args.compare_fp32 and args.precision != 'fp32':
        sq32, idx32 = knn_search(feats, args.k1, backend='auto')
        lab32 = DBSCANClusterer(eps=args.eps, min_samples=args.min_samples)(
            dist=JaccardDistance(
                k1=args.k1, k2=args.k2,
                jaccard_device=args.jaccard_device).from_knn(
                    feats, sq32, idx32))
        result['ari_vs_fp32'] = float(adjusted_rand_score(lab32, labels))
        result['num_clusters_fp32'] = int(lab32.max()) + 1
    if knn_backend in ('ivf', 'hnsw'):
        import numpy as np
        from mmreid_usl.clustering.approx_knn import recall_at_k
        from mmreid_usl.utils.search import topk_search
        result.update({f'ivf_{k}': v for k, v in ivf_info.items()})
        q = np.sort(np.random.default_rng(1).choice(
            args.n, min(args.recall_queries, args.n), replace=False))
        _, truth = topk_search(feats[torch.from_numpy(q)], feats, args.k1)
        result['recall_at_k'] = recall_at_k(index[torch.from_numpy(q)],
                                            truth)
        if args.compare_exact:
            e0 = time.perf_counter()
            sq_x, ix_x = knn_search(feats, args.k1)
            e1 = time.perf_counter()
            lab_x = DBSCANClusterer(eps=args.eps,
                                    min_samples=args.min_samples)(
                dist=JaccardDistance(
                    k1=args.k1, k2=args.k2,
                    max_distance=args.max_distance,
                    jaccard_device=args.jaccard_device).from_knn(
                        feats, sq_x, ix_x))
            e2 = time.perf_counter()
            result.update(exact_knn_s=e1 - e0, exact_total_s=e2 - e0,
                          ari_vs_exact=_ari_outliers_apart(lab_x, labels),
                          speedup_vs_exact=(e2 - e0) / result['total_s'],
                          exact_ari=cluster_stats(lab_x, pids)['ari'])
    result['load_avg_end'] = load_average()
    for key in ('knn_s', 'jaccard_s', 'dbscan_s', 'after_knn_s', 'total_s',
                'peak_rss_gb'):
        sys.stderr.write(f'{key:>12}: {result[key]:.3f}\n')
    print(json.dumps(result))


def _ari_outliers_apart(a, b) -> float:
    """ARI of two labellings with every outlier (-1) its own cluster, the
    convention of ``cluster_stats`` (a shared "-1 cluster" would count two
    outliers as a correctly paired couple)."""
    import numpy as np
    from sklearn.metrics import adjusted_rand_score

    def apart(x):
        x = np.asarray(x).copy()
        neg = x < 0
        x[neg] = x.max() + 1 + np.arange(int(neg.sum()))
        return x

    return float(adjusted_rand_score(apart(a), apart(b)))


def _rank_worker(rank, args, path, port, out):
    """One rank of ``--world-size``: reads its rows, labels together."""
    import os
    import numpy as np
    import torch
    import torch.distributed as dist

    from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance
    from mmreid_usl.clustering.sharded import (knn_shard_bounds,
                                               sharded_pseudo_labels)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=args.world_size)
    mm = np.load(path, mmap_mode='r')
    s, e = knn_shard_bounds(args.n, args.dim, args.world_size)[rank]
    # a writable copy of this rank's rows only (the memmap is read-only)
    block = torch.from_numpy(np.array(mm[s:e]))
    del mm
    timing = {}
    c0, t0 = time.process_time(), time.perf_counter()
    labels = sharded_pseudo_labels(
        block, args.n,
        JaccardDistance(k1=args.k1, k2=args.k2,
                        max_distance=args.max_distance),
        lambda d: DBSCANClusterer(eps=args.eps,
                                  min_samples=args.min_samples)(dist=d),
        timing=timing, knn_threads=args.knn_threads)
    timing.update(total_s=time.perf_counter() - t0,
                  cpu_s=time.process_time() - c0, rows=e - s,
                  peak_rss_gb=peak_rss_gb())
    out[rank] = timing
    if rank == 0:
        np.save(path + '.labels.npy', labels)
    dist.destroy_process_group()


def _main_world(args, argv):
    """``--world-size W``: W gloo processes on this machine."""
    import socket
    import subprocess
    import tempfile

    import numpy as np
    import torch
    import torch.multiprocessing as mp

    from mmreid_usl.clustering import cluster_stats
    if args.knn != 'faiss' or args.precision != 'fp32':
        raise SystemExit('--world-size runs the exact faiss kNN only')
    if args.jaccard_device != 'cpu':
        raise SystemExit('--world-size computes the Jaccard rows on the CPU '
                         '(--jaccard-device cpu)')
    if args.knn_threads is None:
        args.knn_threads = torch.get_num_threads()
    load = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'feats.npy')
        feats, pids, _ = synthetic_features(args.n, args.ids, dim=args.dim,
                                            seed=args.seed,
                                            noise_norm=args.noise_norm)
        np.save(path, feats)
        del feats
        with socket.socket() as sock:
            sock.bind(('127.0.0.1', 0))
            port = sock.getsockname()[1]
        out = mp.Manager().dict()
        t0 = time.perf_counter()
        mp.spawn(_rank_worker, args=(args, path, port, out),
                 nprocs=args.world_size)
        wall = time.perf_counter() - t0
        labels = np.load(path + '.labels.npy')
    ranks = [dict(out[r]) for r in range(args.world_size)]
    stats = cluster_stats(labels, pids)
    result = dict(n=args.n, ids=args.ids, dim=args.dim, knn='faiss',
                  world_size=args.world_size, knn_threads=args.knn_threads,
                  max_distance=args.max_distance, eps=args.eps,
                  load_avg_start=load, spawn_wall_s=wall,
                  total_s=max(r['total_s'] for r in ranks),
                  peak_rss_gb=max(r['peak_rss_gb'] for r in ranks),
                  num_clusters=stats['num_clusters'],
                  num_outliers=stats['num_outliers'], ari=stats['ari'],
                  nmi=stats['nmi'], ranks=ranks)
    for key in ('knn_s', 'gather_knn_s', 'encode_s', 'expand_s',
                'jaccard_rows_s', 'gather_pairs_s', 'cluster_s'):
        result[key] = max(r.get(key, 0.0) for r in ranks)
    if args.compare_single:
        with tempfile.TemporaryDirectory() as tmp:
            lab_path = osp.join(tmp, 'single.npy')
            child = [a for i, a in enumerate(argv)
                     if a not in ('--compare-single', '--world-size')
                     and not a.startswith('--world-size=')
                     and (i == 0 or argv[i - 1] != '--world-size')]
            child += ['--save-labels', lab_path,
                      '--knn-threads', str(args.knn_threads)]
            run = subprocess.run([sys.executable, osp.abspath(__file__)] +
                                 child, check=True, capture_output=True,
                                 text=True)
            single = json.loads(run.stdout.strip().splitlines()[-1])
            single_labels = np.load(lab_path)
        result.update(
            same_labels_as_single_process=bool(
                np.array_equal(single_labels, labels)),
            single_peak_rss_gb=single['peak_rss_gb'],
            single_total_s=single['total_s'],
            single_knn_s=single['knn_s'])
    result['load_avg_end'] = load_average()
    print(json.dumps(result))


if __name__ == '__main__':
    main()
