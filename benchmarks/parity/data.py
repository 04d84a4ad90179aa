# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The real-image subset both sides of a parity run read.

A Market-layout folder of symbolic links to the first identities (sorted
raw id) of a Market-layout dataset (``data/cuhk03_detected`` by default),
so our ``ReIDFolderDataset`` and the reference's ``Preprocessor`` read the
very same files, in the same (sorted path) order:

- ``bounding_box_train/``: whole identities until ``num_train`` images;
- ``query/`` and ``bounding_box_test/``: the first identities of the test
  split until ``num_test`` images, query/gallery as in the source.

Camera numbers are kept; identities are taken from the cameras of the
first train image's camera pair only (``cameras``), so the 0-based camera
ids are contiguous, which the reference ICE code requires (it indexes
per-camera lists by camera id).
"""
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

PATTERN = re.compile(r'^(-1|\d+)_c(\d+)')
SPLITS = ('bounding_box_train', 'query', 'bounding_box_test')


def _images(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(('.jpg', '.jpeg', '.png')))


def _by_id(names: Sequence[str], cameras: Sequence[int]
           ) -> 'OrderedDict[int, List[str]]':
    ids: 'OrderedDict[int, List[str]]' = OrderedDict()
    for name in names:
        m = PATTERN.match(name)
        if m is None:
            continue
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid < 0 or cam not in cameras:
            continue
        ids.setdefault(pid, []).append(name)
    return OrderedDict(sorted(ids.items()))


def make_subset(source: str,
                out_dir: str,
                num_train: int = 500,
                num_test: int = 200,
                cameras: Sequence[int] = (1, 2)) -> Dict[str, int]:
    """Write the symlink subset and return its sizes.

    Args:
        source (str): A Market-layout dataset root.
        out_dir (str): Where the subset folder is written (replaced).
        num_train (int): Training images (whole identities, at least).
        num_test (int): Query + gallery images (whole identities).
        cameras (Sequence[int]): File-name camera numbers to keep.

    Raises:
        FileNotFoundError: ``source`` is not a Market-layout folder.
    """
    for split in SPLITS:
        if not osp.isdir(osp.join(source, split)):
            raise FileNotFoundError(
                f'{source!r} has no {split}/ folder: --data must be a '
                'Market-layout dataset root, e.g. data/cuhk03_detected '
                '(see README "Datasets").')
    source = osp.realpath(source)
    counts = {}
    train = _by_id(_images(osp.join(source, SPLITS[0])), cameras)
    chosen = _take(train, num_train)
    _link(source, out_dir, SPLITS[0], chosen)
    counts['train'] = len(chosen)
    q = _by_id(_images(osp.join(source, 'query')), cameras)
    g = _by_id(_images(osp.join(source, 'bounding_box_test')), cameras)
    test_ids, total = [], 0
    for pid in q:
        if total >= num_test:
            break
        test_ids.append(pid)
        total += len(q[pid]) + len(g.get(pid, []))
    _link(source, out_dir, 'query', [n for p in test_ids for n in q[p]])
    _link(source, out_dir, 'bounding_box_test',
          [n for p in test_ids for n in g.get(p, [])])
    counts['query'] = sum(len(q[p]) for p in test_ids)
    counts['gallery'] = sum(len(g.get(p, [])) for p in test_ids)
    return counts


def _take(ids: 'OrderedDict[int, List[str]]', num: int) -> List[str]:
    out: List[str] = []
    for names in ids.values():
        if len(out) >= num:
            break
        out += names
    return out


def _link(source: str, out_dir: str, split: str, names: List[str]) -> None:
    folder = osp.join(out_dir, split)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):
        os.remove(osp.join(folder, old))
    for name in names:
        os.symlink(osp.join(source, split, name), osp.join(folder, name))


def reference_lists(root: str) -> Dict[str, List[Tuple[str, int, int]]]:
    """``(path, raw pid, 0-based camera)`` lists of the subset, sorted by
    path: the ``dataset.train / query / gallery`` of the open-reid style
    dataset objects of the reference code."""
    out = {}
    for key, split in zip(('train', 'query', 'gallery'), SPLITS):
        items = []
        for name in _images(osp.join(root, split)):
            m = PATTERN.match(name)
            items.append((osp.join(root, split, name), int(m.group(1)),
                          int(m.group(2)) - 1))
        out[key] = items
    return out


class ReferenceDataset:
    """The dataset object the reference scripts expect (``train``,
    ``query``, ``gallery`` lists of ``(fname, pid, camid)`` and
    ``images_dir``), on the subset. The reference's own dataset classes
    parse Market-1501 names with a one-digit camera (``c(\\d)``) and
    assert camera <= 6, so they cannot read CUHK03's ten cameras; this is
    the only part of the reference's data path that is replaced.

    Train pids are relabelled 0..P-1 as the reference's classes do."""

    def __init__(self, root: str) -> None:
        lists = reference_lists(root)
        relabel = {
            p: i
            for i, p in enumerate(sorted({p for _, p, _ in lists['train']}))
        }
        self.train = [(f, relabel[p], c) for f, p, c in lists['train']]
        self.query = lists['query']
        self.gallery = lists['gallery']
        self.images_dir = None  # fnames are absolute paths
        self.num_train_pids = len(relabel)
