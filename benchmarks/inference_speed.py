# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Embedding a gallery and searching it with ReIDInferencer (issue 13).

Example (CUHK03 gallery, 5,555 images; 1,000 real queries)::

    python benchmarks/inference_speed.py \
        --config configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py \
        --gallery data/cuhk03_detected/bounding_box_test \
        --query data/cuhk03_detected/query --num-queries 1000

Without ``--checkpoint`` the config's model is saved untrained to a
temporary checkpoint (speed does not depend on the weights). Timed: the
gallery embedding (``build_gallery``: read, test pipeline, forward, in
batches), the 1,000-query embedding, and the search of those queries
against the embedded gallery (top-10, cosine; each backend, median of
``--repeat`` runs after one warm-up), plus saving / loading the index. The
last printed line is one JSON object; ``peak_rss_gb`` is the peak resident
memory of the whole process (Python, torch and the model included) and
``rss_before_gb`` the same before the gallery is embedded;
``gallery_embed_cpu_s`` is the CPU time of the embedding (all threads), a
figure less sensitive than wall time to other processes on a shared machine.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402

from _bench_utils import load_average, peak_rss_gb  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config',
        default='configs/cluster_contrast/cluster-contrast_mbv2_cuhk03.py')
    parser.add_argument('--checkpoint', default=None)
    parser.add_argument(
        '--gallery', default='data/cuhk03_detected/bounding_box_test')
    parser.add_argument('--query', default='data/cuhk03_detected/query')
    parser.add_argument('--num-queries', type=int, default=1000)
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=5)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmreid_usl.apis import GalleryIndex, ReIDInferencer, init_model
    tmp = tempfile.mkdtemp(prefix='inference_speed_')
    ckpt = args.checkpoint
    if ckpt is None:
        torch.manual_seed(0)
        model = init_model(args.config)
        ckpt = osp.join(tmp, 'untrained.pth')
        torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
        del model
    inferencer = ReIDInferencer(
        args.config,
        pretrained=ckpt,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers)
    out = dict(
        config=args.config,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        torch_threads=torch.get_num_threads(),
        load_before=load_average())
    out['rss_before_gb'] = round(peak_rss_gb(), 3)

    t, c = time.perf_counter(), time.process_time()
    index = inferencer.build_gallery(args.gallery)
    out['gallery_images'] = len(index)
    out['gallery_embed_s'] = round(time.perf_counter() - t, 2)
    out['gallery_embed_cpu_s'] = round(time.process_time() - c, 2)
    out['gallery_images_per_s'] = round(len(index) / out['gallery_embed_s'],
                                        1)
    out['peak_rss_after_gallery_gb'] = round(peak_rss_gb(), 3)

    queries = inferencer._inputs_to_list(args.query)[:args.num_queries]
    t = time.perf_counter()
    q_feats, _, _ = inferencer.embed(queries)
    out['num_queries'] = len(q_feats)
    out['query_embed_s'] = round(time.perf_counter() - t, 2)

    for backend in ('faiss', 'torch'):
        index.search(q_feats, args.topk, backend=backend)  # warm-up
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            index.search(q_feats, args.topk, backend=backend)
            times.append(time.perf_counter() - t)
        out[f'search_{backend}_s'] = round(statistics.median(times), 4)

    path = osp.join(tmp, 'gallery.npz')
    t = time.perf_counter()
    index.save(path)
    out['index_save_s'] = round(time.perf_counter() - t, 3)
    out['index_mb'] = round(os.path.getsize(path) / 1e6, 1)
    t = time.perf_counter()
    loaded = GalleryIndex.load(path)
    out['index_load_s'] = round(time.perf_counter() - t, 3)
    assert torch.equal(loaded.features, index.features)
    out['peak_rss_gb'] = round(peak_rss_gb(), 3)
    out['load_after'] = load_average()
    print(json.dumps(out))


if __name__ == '__main__':
    main()
