# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Does the IVF miss an image's neighbours because the cells split by camera?

The synthetic features (``benchmarks/synthetic_features.py``) shift every
image by a per-camera direction (``0.5 * c[cam]``), as real ReID features
carry a camera bias. An IVF built on them partitions by camera first, so the
same identity's images from other cameras sit in cells a query does not
probe. This probe measures recall@k of the all-rows IVF search
(``approx_knn_search``, the self-join) against the exact kNN on sampled
queries, twice:

1. ``plain``: the index built and searched on the features;
2. ``camera_centred``: ``approx_knn_search(camids=...)``: the cells built
   on the features minus their camera's mean (the partition only); the
   self-join ranks every candidate of the probed cells in the original
   space (with ``--faiss-search``: faiss's search in the centred space,
   ``--candidates`` neighbours per row re-scored exactly in the original
   one, the best k kept).

Both use the package's defaults (spherical k-means cells, the self-join);
``--l2-cells --faiss-search`` is the search the figures of commit
``01b5a62`` in ``docs/benchmarks.md`` were taken with (their k-means had 64
training rows per centroid, the default is now 39).

Usage::

    python benchmarks/ivf_camera_partition_probe.py --n 200000 --ids 10000 \\
        --dim 256 --noise-norm 0.8 --nprobe 16

Prints one JSON object as its last line.
"""
import argparse
import json
import os.path as osp
import sys
import time

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from synthetic_features import synthetic_features  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--n', type=int, default=200000)
    parser.add_argument('--ids', type=int, default=10000)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument('--noise-norm', type=float, default=0.8)
    parser.add_argument('--k', type=int, default=30)
    parser.add_argument('--nprobe', type=int, default=16)
    parser.add_argument('--nlist', type=int)
    parser.add_argument('--candidates', type=int, default=60,
                        help='with --faiss-search: neighbours per row '
                        'searched in the centred space and re-scored in the '
                        'original one (a multiple of --k: approx_knn_search '
                        'refine_factor)')
    parser.add_argument('--faiss-search', action='store_true',
                        help="faiss's search instead of the self-join")
    parser.add_argument('--l2-cells', action='store_true',
                        help='L2 k-means cells instead of spherical ones')
    parser.add_argument('--queries', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmreid_usl.clustering.approx_knn import (approx_knn_search,
                                                  recall_at_k)
    from mmreid_usl.utils.search import topk_search
    x, pids, cams = synthetic_features(args.n, args.ids, dim=args.dim,
                                       noise_norm=args.noise_norm,
                                       seed=args.seed)
    feats = torch.from_numpy(x)
    q = torch.from_numpy(np.sort(np.random.default_rng(1).choice(
        args.n, min(args.queries, args.n), replace=False)))
    _, truth = topk_search(feats[q], feats, args.k)
    result = dict(n=args.n, ids=args.ids, dim=args.dim,
                  noise_norm=args.noise_norm, k=args.k, nprobe=args.nprobe,
                  candidates=args.candidates,
                  self_join=not args.faiss_search,
                  spherical=not args.l2_cells,
                  same_id_share_of_exact=float(
                      (pids[truth.numpy()] == pids[q.numpy()][:, None]).mean()))
    t = time.perf_counter()
    info = {}
    # the partitions alone: no refinement of either search
    opts = dict(nlist=args.nlist, nprobe=args.nprobe, refine_iters=0,
                self_join=not args.faiss_search, spherical=not args.l2_cells)
    _, idx = approx_knn_search(feats, args.k, info=info, **opts)
    result.update(plain_s=time.perf_counter() - t,
                  plain_recall=recall_at_k(idx[q], truth),
                  nlist=info['nlist'])
    t = time.perf_counter()
    _, idx = approx_knn_search(feats, args.k, camids=cams,
                               refine_factor=max(1, args.candidates // args.k),
                               **opts)
    result.update(camera_centred_s=time.perf_counter() - t,
                  camera_centred_recall=recall_at_k(idx[q], truth))
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
