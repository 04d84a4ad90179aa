# Copyright (c) mmreid_usl contributors. All rights reserved.
"""MSMT17, in the folder (V1, converted) or the list (official) layout."""
import os.path as osp
import re
from typing import List, Tuple

from mmreid_usl.registry import DATASETS
from .reid_folder_dataset import ReIDFolderDataset

#: Base-name pattern of the official list layout: ``PPPP_III_CC_...``.
MSMT17_LIST_NAME_PATTERN = r'^(-1|\d+)_[-\d]+_(\d+)'

LAYOUTS = ('auto', 'folders', 'lists')


@DATASETS.register_module()
class MSMT17(ReIDFolderDataset):
    """MSMT17 [1]_ in either of the two layouts the papers read.

    - ``layout='folders'`` (``MSMT17_V1`` as Cluster Contrast expects it):
      Market-style ``bounding_box_train/``, ``query/``, ``bounding_box_test/``
      with names ``<pid>_c<cam>...`` parsed by ``r'^(-1|\\d+)_c(\\d+)'``
      (anchored at the start of the name).
    - ``layout='lists'`` (the official downloads, as ICE reads them): lines
      ``<relative path> <label>`` in ``list_train.txt`` + ``list_val.txt``
      (together the train split), ``list_query.txt`` and
      ``list_gallery.txt``; the images are under ``train/`` and ``test/``
      (``MSMT17_V1``) or the face-masked ``mask_train_v2/`` and
      ``mask_test_v2/`` (``MSMT17_V2``, the folders ICE reads); whichever
      pair exists is used. As in ICE, pid and camera are parsed from the
      base name ``PPPP_III_CC_...`` (e.g.
      ``0000_000_01_0303morning_0015_0.jpg``: pid 0, camera 1) with
      ``r'^(-1|\\d+)_[-\\d]+_(\\d+)'``; the label column is not used.
    - ``layout='auto'``: ``'lists'`` if ``list_train.txt`` exists under
      ``data_root``, else ``'folders'``.

    Cameras must lie in 1..15 (stored 0..14). Expected sizes of V2
    (``docs/algorithms/common.md#msmt17-layouts``): train (train + val)
    32,621 images / 1,041 ids
    (relabelled 0..1040); query 11,659 / 3,060 ids; gallery 82,161 / 3,060
    ids; 15 cameras. The converted V1 folders give the same counts.

    Args:
        data_root (str): ``MSMT17_V1`` or ``MSMT17_V2`` folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        layout (str): ``'auto'``, ``'folders'`` or ``'lists'``.
            Defaults to ``'auto'``.
        use_val_in_train (bool): List layout only: add ``list_val.txt`` to
            the train split, as ICE does. Defaults to True.
        **kwargs: See :class:`ReIDFolderDataset`. In the list layout,
            ``name_pattern`` defaults to the pattern above.

    References:
        .. [1] Wei et al. "Person Transfer GAN to Bridge Domain Gap for
           Person Re-Identification", CVPR 2018.
    """

    METAINFO: dict = dict(dataset_name='MSMT17')

    #: Image sub-folder candidates (first existing wins) and list files of
    #: each split in the list layout: V1 ``train/``/``test/``, V2
    #: ``mask_train_v2/``/``mask_test_v2/``.
    LIST_FILES = dict(train=(('train', 'mask_train_v2'), ('list_train.txt',
                                                          'list_val.txt')),
                      query=(('test', 'mask_test_v2'), ('list_query.txt', )),
                      gallery=(('test', 'mask_test_v2'),
                               ('list_gallery.txt', )))

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 layout: str = 'auto',
                 use_val_in_train: bool = True,
                 **kwargs) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f'layout must be one of {LAYOUTS}, '
                             f'got {layout!r}.')
        if layout == 'auto' and data_root:
            layout = 'lists' if osp.isfile(
                osp.join(str(data_root), 'list_train.txt')) else 'folders'
        self.layout = layout
        self.use_val_in_train = use_val_in_train
        if layout == 'lists':
            kwargs.setdefault('name_pattern', MSMT17_LIST_NAME_PATTERN)
        kwargs.setdefault('cam_range', (1, 15))
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _read_list(self, list_file: str,
                   img_dir: str) -> List[Tuple[str, int, int]]:
        if not osp.isfile(list_file):
            raise FileNotFoundError(f'{type(self).__name__}: list file '
                                    f'{list_file!r} does not exist.')
        items = []
        with open(list_file, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                fields = line.split()
                if len(fields) != 2 or not re.fullmatch(r'-?\d+', fields[1]):
                    raise ValueError(
                        f'{type(self).__name__}: {list_file}:{lineno}: '
                        f'expected "<path> <label>", got {line!r}.')
                path = osp.join(img_dir, fields[0])
                items.append((path, *self.parse_name(path)))
        if not items:
            raise ValueError(f'{type(self).__name__}: list file '
                             f'{list_file!r} holds no image.')
        return items

    def load_split(self, split: str) -> List[Tuple[str, int, int]]:
        """Read one split in the selected layout."""
        if self.layout == 'folders':
            return super().load_split(split)
        sub_dirs, list_names = self.LIST_FILES[split]
        if split == 'train' and not self.use_val_in_train:
            list_names = list_names[:1]
        found = [d for d in sub_dirs if osp.isdir(osp.join(self.data_root, d))]
        if not found:
            raise FileNotFoundError(
                f'{type(self).__name__}: no image folder for split '
                f'{split!r} under {self.data_root!r}: expected one of '
                f'{list(sub_dirs)}.')
        img_dir = osp.join(self.data_root, found[0])
        items = []
        for name in list_names:
            items += self._read_list(osp.join(self.data_root, name), img_dir)
        return items
