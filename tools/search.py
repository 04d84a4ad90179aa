# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Find query persons in a folder of camera crops.

Usage::

    python tools/search.py CONFIG CHECKPOINT --query Q [Q ...] \
        --gallery DIR [DIR ...] | --gallery INDEX.npz \
        [--topk 10] [--out results.json] [--show out.png] \
        [--save-index gallery.npz] [--rerank] [--backend auto|faiss|torch] \
        [--batch-size 64] [--num-workers 0] [--device cpu|cuda] \
        [--encoder student|momentum] [--name-pattern REGEX] \
        [--cfg-options ...]

Queries are image files or folders (recursively). The gallery is either
folders / files to embed (any file names) or an index saved before with
``--save-index`` or by ``tools/extract_features.py``, so a large gallery is
embedded once. The gallery is ranked for every query by the cosine
similarity of the L2-normalised features (the ranking of evaluation's
distance ``||q - g||² = 2 - 2 q·g``) with :class:`mmreid_usl.apis.
ReIDInferencer`.

Output: the top-k of each query is logged; ``--out`` writes them as JSON
(a list of ``{query, paths, scores, indices[, pids, camids]}``); ``--show``
draws one row per query with its top-k gallery images and their scores
(frames green / red for same / other person only when the query and gallery
file names both carry ids, e.g. Market-1501 or CUHK03 names).

Unreadable gallery images are skipped with a warning naming each; an
unreadable query is an error.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.logging import print_log

from mmreid_usl.engine.checkpointing import run_setup


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = run_setup.tool_parser(
        'Search a gallery of person images for query images')
    run_setup.add_images_arg(parser, '--query', 'query image(s) / folder(s)')
    run_setup.add_images_arg(
        parser, '--gallery',
        'gallery folder(s) / images, or one saved index (.npz)')
    parser.add_argument('--topk',
                        type=int,
                        default=10,
                        help='results per query')
    parser.add_argument('--out', help='write the results as JSON')
    parser.add_argument(
        '--show', help='draw the queries and their top-k into this image')
    parser.add_argument('--title', help='title of the --show picture')
    parser.add_argument('--save-index',
                        help='save the embedded gallery (.npz) for reuse')
    parser.add_argument(
        '--rerank',
        action='store_true',
        help='k-reciprocal re-ranking of the whole gallery (Zhong et al., '
        'CVPR 2017; k1=20, k2=6, lambda=0.3); scores become 1 - d*')
    parser.add_argument('--backend',
                        default='auto',
                        choices=['auto', 'faiss', 'torch'],
                        help='nearest-neighbour search backend')
    run_setup.add_inferencer_args(parser, features_are='compared')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """Embed (or load) the gallery, search it and write what was asked."""
    args = parse_args(argv)
    if args.topk < 1:
        raise ValueError('--topk must be >= 1')
    inferencer = run_setup.build_inferencer(args, backend=args.backend)
    # the queries are read first: a bad one is named at once, not after the
    # whole gallery has been embedded
    inferencer.check_inputs(args.query)
    if len(args.gallery) == 1 and args.gallery[0].endswith('.npz'):
        gallery = inferencer.set_gallery(args.gallery[0])
    else:
        gallery = inferencer.set_gallery(args.gallery)
    print_log(f'Gallery: {gallery!r}', logger='current')
    if args.save_index:
        path = gallery.save(args.save_index)
        print_log(f'Gallery index saved to {path}', logger='current')

    results = inferencer(args.query,
                         topk=args.topk,
                         rerank=args.rerank,
                         out_file=args.show,
                         title=args.title)
    for res in results:
        top = ', '.join(f'{osp.basename(p)} ({s:.3f})'
                        for p, s in zip(res['paths'][:5], res['scores'][:5]))
        print_log(f"{res['query']}: {top}", logger='current')
    if args.out:
        out_dir = osp.dirname(osp.abspath(args.out))
        os.makedirs(out_dir, exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
        print_log(f'Results of {len(results)} queries saved to {args.out}',
                  logger='current')
    return results


if __name__ == '__main__':
    main()
