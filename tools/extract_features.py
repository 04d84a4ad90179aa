# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Embed the images of folders and save the features for other tools.

Usage::

    python tools/extract_features.py CONFIG CHECKPOINT --folder DIR [DIR ...] \
        --out feats.npz [--name-pattern REGEX] [--batch-size 64] \
        [--num-workers 0] [--device cpu|cuda] \
        [--encoder student|momentum] [--cfg-options ...]

Every image under the folders (recursively; any file names) goes through
the config's test pipeline and the model (:class:`mmreid_usl.apis.
ReIDInferencer`); the L2-normalised features are written to an ``.npz``
(``numpy.load(path, allow_pickle=False)`` reads it):

- ``features``: float32 ``(N, D)``, row ``i`` is ``paths[i]``;
- ``paths``: the image paths (unicode strings), sorted per folder;
- ``pids`` / ``camids``: int64 person id and 0-based camera, only when every
  file name matches ``--name-pattern`` (default: the config's test dataset
  pattern, or Market-1501's ``([-\\d]+)_c(\\d+)``);
- ``meta``: JSON string (config, checkpoint, encoder, pattern).

The same file is a saved gallery index: ``tools/search.py --gallery
feats.npz`` searches it without embedding again. Unreadable images (corrupt
files, not images) are skipped with a warning that names each; a folder
that does not exist or holds no image, or one where no image can be read,
is an error.
"""
import argparse
from typing import Optional, Sequence

from mmengine.logging import print_log

from mmreid_usl.engine.checkpointing import run_setup


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = run_setup.tool_parser(
        'Extract ReID features of image folders into an .npz')
    run_setup.add_images_arg(
        parser, '--folder',
        'image folder(s), searched recursively (image files work too)')
    parser.add_argument('--out',
                        required=True,
                        help='output .npz file (suffix added)')
    run_setup.add_inferencer_args(parser, features_are='exported')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> str:
    """Embed the folders and write the ``.npz``; returns its path."""
    args = parse_args(argv)
    inferencer = run_setup.build_inferencer(args)
    index = inferencer.build_gallery(args.folder)
    out = index.save(args.out)
    ids = ('with pids / camids parsed from the names' if index.pids is not None
           else 'without ids (not every name matches '
           f'{inferencer.name_pattern!r})')
    print_log(
        f'Saved {len(index)} features of dimension {index.feat_dim} to '
        f'{out}, {ids}.',
        logger='current')
    return out


if __name__ == '__main__':
    main()
