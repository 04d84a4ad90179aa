# Copyright (c) mmreid_usl contributors. All rights reserved.
"""A ReID dataset stored in the Market-1501 folder layout."""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmreid_usl.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset

#: Default sub-folder of each split (the Market-1501 names).
MARKET_SPLIT_DIRS: Dict[str, str] = dict(
    train='bounding_box_train', query='query', gallery='bounding_box_test')

#: Default file-name pattern: the name STARTS with ``<pid>_c<cam>``, where
#: pid is ``-1`` (junk) or digits, and cam is 1-based digits. Anchored, so
#: that e.g. ``photo_2023_c3.jpg`` is an error rather than person 2023.
MARKET_NAME_PATTERN = r'^(-1|\d+)_c(\d+)'

IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')


@DATASETS.register_module()
class ReIDFolderDataset(BaseReIDDataset):
    """Any ReID dataset laid out like Market-1501.

    ``data_root/{bounding_box_train, query, bounding_box_test}/`` hold the
    images; each file name gives the person id and the 1-based camera id
    through ``name_pattern`` (its first group is the pid, its second the
    camera), searched (``re.search``) in the base name. The default pattern
    ``r'^(-1|\\d+)_c(\\d+)'`` is anchored: the name must START with the
    pid, so ``0002_c1s1_000451_03.jpg`` is person 2, camera 1, while
    ``photo_2023_c3.jpg`` or ``0000-1_c01.jpg`` are errors (a custom pattern
    is anchored only if it starts with ``^``). Files whose suffix is not an
    image suffix (e.g. ``Thumbs.db``) are ignored; an image whose name does
    not match the pattern, whose groups are not integers, whose pid is below
    ``-1`` or whose camera is below ``cam_start`` (e.g. ``c00`` with the
    1-based Market convention) is an error that names the file and the
    pattern. See :class:`BaseReIDDataset` for the protocol (junk ``-1``
    dropped, train relabelled, ``camid = cam - cam_start``).

    Args:
        data_root (str): Root folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        name_pattern (str): Regex with two groups (pid, camera).
            Defaults to ``r'^(-1|\\d+)_c(\\d+)'`` (two-digit cameras
            work).
        split_dirs (dict, optional): Sub-folder of each of ``'train'``,
            ``'query'``, ``'gallery'``; missing keys take the Market names.
        cam_range (tuple[int, int], optional): Inclusive range of valid
            1-based camera ids; others raise ``ValueError``. Defaults to None.
        pid_range (tuple[int, int], optional): Inclusive range of valid
            person ids other than the junk ``-1``. Defaults to None.
        img_suffixes (Sequence[str]): Image suffixes (case-insensitive).
        cam_start (int): Camera number of the first camera in the file
            names; ``camid = cam - cam_start`` is 0-based. Defaults to 1 (the
            Market-1501 convention ``c1`` ... ``c6``).
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO: dict = dict(dataset_name='ReIDFolder')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 name_pattern: str = MARKET_NAME_PATTERN,
                 split_dirs: Optional[Dict[str, str]] = None,
                 cam_range: Optional[Tuple[int, int]] = None,
                 pid_range: Optional[Tuple[int, int]] = None,
                 img_suffixes: Sequence[str] = IMG_SUFFIXES,
                 cam_start: int = 1,
                 **kwargs) -> None:
        if not isinstance(cam_start, int) or isinstance(cam_start, bool):
            raise TypeError(f'cam_start must be an int, got {cam_start!r}.')
        self.cam_start = cam_start
        self.name_pattern = name_pattern
        self._regex = re.compile(name_pattern)
        if self._regex.groups < 2:
            raise ValueError('name_pattern needs two groups (pid, camera), '
                             f'got {name_pattern!r}.')
        self.split_dirs = dict(MARKET_SPLIT_DIRS)
        self.split_dirs.update(split_dirs or {})
        self.cam_range = tuple(cam_range) if cam_range else None
        self.pid_range = tuple(pid_range) if pid_range else None
        self.img_suffixes = tuple(s.lower() for s in img_suffixes)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def parse_name(self, path: str) -> Tuple[int, int]:
        """Return ``(raw_pid, camid)`` (0-based camid) of an image path.

        Raises:
            ValueError: The base name does not match ``name_pattern``, or an
                id is outside ``cam_range`` / ``pid_range``.
        """
        name = osp.basename(path)
        match = self._regex.search(name)
        where = (f'{type(self).__name__}: file name {name!r} ({path}), '
                 f'pattern r"{self.name_pattern}"')
        if match is None:
            raise ValueError(f'{where}: the name does not match the pattern '
                             '(its groups are the person id and the camera).')
        try:
            pid, cam = int(match.group(1)), int(match.group(2))
        except (TypeError, ValueError):
            raise ValueError(
                f'{where}: the groups {match.group(1)!r} (person id) and '
                f'{match.group(2)!r} (camera) must be integers.') from None
        if pid < -1:
            raise ValueError(f'{where}: person id {pid} is below -1 (-1 '
                             'marks junk images).')
        if cam < self.cam_start:
            raise ValueError(
                f'{where}: camera {cam} is below {self.cam_start}; cameras in '
                f'file names are numbered from {self.cam_start} (set '
                '`cam_start=0` for a dataset whose cameras start at 0).')
        if self.cam_range is not None and not (self.cam_range[0] <= cam <=
                                               self.cam_range[1]):
            raise ValueError(f'{type(self).__name__}: camera {cam} of {path} '
                             f'is outside {self.cam_range}.')
        if pid != -1 and self.pid_range is not None and not (
                self.pid_range[0] <= pid <= self.pid_range[1]):
            raise ValueError(f'{type(self).__name__}: pid {pid} of {path} is '
                             f'outside {self.pid_range}.')
        return pid, cam - self.cam_start

    def list_images(self, folder: str) -> List[str]:
        """Sorted image paths of ``folder`` (not recursive).

        Raises:
            FileNotFoundError: ``folder`` does not exist.
            ValueError: ``folder`` holds no image.
        """
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'{type(self).__name__}: split folder {folder!r} does not '
                'exist.')
        names = sorted(
            n for n in os.listdir(folder)
            if osp.splitext(n)[1].lower() in self.img_suffixes)
        if not names:
            raise ValueError(f'{type(self).__name__}: split folder '
                             f'{folder!r} holds no image '
                             f'(suffixes {self.img_suffixes}).')
        return [osp.join(folder, n) for n in names]

    def load_split(self, split: str) -> List[Tuple[str, int, int]]:
        """Read one split from its folder (see :class:`BaseReIDDataset`)."""
        folder = osp.join(self.data_root, self.split_dirs[split])
        return [(p, *self.parse_name(p)) for p in self.list_images(folder)]
