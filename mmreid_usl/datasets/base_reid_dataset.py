# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The base class of every person re-identification dataset."""
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset

#: The splits every ReID dataset understands.
SPLITS = ('train', 'query', 'gallery', 'test')


class BaseReIDDataset(BaseDataset):
    """Base class of person re-identification datasets.

    Subclasses only implement :meth:`load_split`, which returns the raw
    ``(img_path, pid, camid)`` triples of one of ``'train'``, ``'query'`` or
    ``'gallery'``; this class applies the protocol of Market-1501 [1]_ that
    Cluster Contrast, ICE and DCMIP share
    (``docs/algorithms/common.md#datasets``):

    - images with ``pid == -1`` ("junk") are dropped from every split;
    - ``pid == 0`` distractors are kept (they only exist in the gallery);
    - train pids are relabelled to ``0..P-1`` in sorted order of the raw ids,
      i.e. :math:`\\text{pid}' = \\operatorname{rank}(\\text{pid})` among the
      sorted unique train ids; query/gallery keep the raw ids so that they
      match each other;
    - ``camid`` is 0-based (file name camera minus one);
    - ``split='test'`` is query followed by gallery, each entry carrying
      ``is_query`` (True for the first ``num_query`` entries).

    Each entry of ``data_list`` is
    ``{'img_path': str, 'pid': int, 'camid': int[, 'is_query': bool]}``;
    ``sample_idx`` is added by :class:`mmengine.dataset.BaseDataset`.
    The dataset is immutable: pseudo-labels never go into it, they live in
    the sampler and the model.

    ``lazy_init=True`` defers all file-system access to :meth:`full_init`
    (called automatically by ``len()``, ``get_pids()``, indexing...).

    Args:
        data_root (str): Root folder of the dataset.
        split (str): One of ``'train'``, ``'query'``, ``'gallery'``,
            ``'test'``. Defaults to ``'train'``.
        pipeline (Sequence[dict | Callable]): Transforms. Defaults to ``()``.
        test_mode (bool, optional): Forwarded to ``BaseDataset``. ``None``
            means ``split != 'train'``. Defaults to None.
        cameras (Sequence[int], optional): Keep only the images of these
            cameras, numbered as in the file names (1-based: ``c1`` is 1;
            ``camid = number - cam_start`` for datasets with a ``cam_start``,
            and the file-name numbers of a ``CAMERA_MAP`` such as PersonX's
            3/4/8/10/11/12). Applied to every split before the train ids are
            relabelled, so a camera subset is a dataset of its own (e.g. the
            source and target domains of a cross-camera adaptation). A
            camera absent from the split is an error naming it. Defaults to
            None (all cameras).
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``metainfo``, ``indices``, ``serialize_data``, ``lazy_init``,
            ``max_refetch``...).

    References:
        .. [1] Zheng et al. "Scalable Person Re-identification: A Benchmark",
           ICCV 2015.
    """

    METAINFO: dict = dict(dataset_name='ReID')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence[Union[dict, Any]] = (),
                 test_mode: Optional[bool] = None,
                 cameras: Optional[Sequence[int]] = None,
                 **kwargs) -> None:
        if cameras is not None:
            if isinstance(cameras, (int, str)) or not len(cameras) or any(
                    isinstance(c, bool) or not isinstance(c, (int, np.integer))
                    for c in cameras):
                raise TypeError(f'{type(self).__name__}: cameras must be a '
                                'non-empty list of int camera numbers, got '
                                f'{cameras!r}.')
            cameras = tuple(sorted({int(c) for c in cameras}))
        self.cameras: Optional[Tuple[int, ...]] = cameras
        self._seen_cameras: set = set()
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}.')
        if data_root is None or str(data_root) == '':
            raise ValueError(f'{type(self).__name__} needs a data_root, '
                             f'got {data_root!r}.')
        self.split = split
        self._pids: Optional[np.ndarray] = None
        self._camids: Optional[np.ndarray] = None
        self._num_query = 0
        if test_mode is None:
            test_mode = split != 'train'
        super().__init__(
            data_root=str(data_root),
            pipeline=list(pipeline),
            test_mode=test_mode,
            **kwargs)

    # ------------------------------------------------------------------
    # To be implemented by subclasses.
    # ------------------------------------------------------------------
    def load_split(self, split: str) -> List[Tuple[str, int, int]]:
        """Read the raw annotations of one split.

        Args:
            split (str): ``'train'``, ``'query'`` or ``'gallery'``.

        Returns:
            list[tuple[str, int, int]]: ``(img_path, raw_pid, camid)`` with a
            0-based ``camid``; junk (``pid == -1``) may be included, it is
            dropped by the caller.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------
    # BaseDataset interface.
    # ------------------------------------------------------------------
    def check_data_root(self) -> None:
        """Raise ``FileNotFoundError`` naming ``data_root`` if it is absent."""
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root {self.data_root!r} does '
                'not exist or is not a directory.')

    def _load_clean(self, split: str) -> List[Tuple[str, int, int]]:
        """:meth:`load_split` without junk, sorted by path."""
        items = [it for it in self.load_split(split) if it[1] != -1]
        if self.cameras is not None:
            number = self.camera_number
            self._seen_cameras |= {number(it[2]) for it in items}
            keep = set(self.cameras)
            items = [it for it in items if number(it[2]) in keep]
        return sorted(items, key=lambda it: it[0])

    def camera_number(self, camid: int) -> int:
        """The file-name camera number of a 0-based ``camid`` (the numbering
        of the ``cameras`` argument)."""
        camera_map = getattr(self, 'CAMERA_MAP', None)
        if camera_map:
            inverse = {v: k for k, v in camera_map.items()}
            return int(inverse[camid])
        return int(camid) + int(getattr(self, 'cam_start', 1))

    def load_data_list(self) -> List[dict]:
        """Build ``data_list`` for ``self.split`` (see the class doc)."""
        self.check_data_root()
        if self.split == 'test':
            query = self._load_clean('query')
            gallery = self._load_clean('gallery')
            data_list = [
                dict(img_path=p, pid=pid, camid=cam, is_query=True)
                for p, pid, cam in query
            ] + [
                dict(img_path=p, pid=pid, camid=cam, is_query=False)
                for p, pid, cam in gallery
            ]
        else:
            items = self._load_clean(self.split)
            if self.split == 'train':
                relabel = {
                    pid: i
                    for i, pid in enumerate(sorted({it[1]
                                                    for it in items}))
                }
                items = [(p, relabel[pid], cam) for p, pid, cam in items]
            data_list = [
                dict(img_path=p, pid=pid, camid=cam) for p, pid, cam in items
            ]
        if self.cameras is not None:
            absent = sorted(set(self.cameras) - self._seen_cameras)
            if absent:
                raise ValueError(
                    f'{type(self).__name__}: camera(s) {absent} of cameras='
                    f'{list(self.cameras)} do not exist in split '
                    f'{self.split!r} under {self.data_root!r}; its cameras '
                    f'are {sorted(self._seen_cameras)} (file-name numbers).')
        if len(data_list) == 0:
            raise ValueError(f'{type(self).__name__}: split {self.split!r} '
                             f'under {self.data_root!r} has no image.')
        return data_list

    # ------------------------------------------------------------------
    # Cheap id arrays (no image loading, no unpickling per access).
    # ------------------------------------------------------------------
    def _set_id_arrays(self, infos: Sequence[dict]) -> None:
        self._pids = np.fromiter((d['pid'] for d in infos),
                                 dtype=np.int64,
                                 count=len(infos))
        self._camids = np.fromiter((d['camid'] for d in infos),
                                   dtype=np.int64,
                                   count=len(infos))
        self._num_query = sum(bool(d.get('is_query', False)) for d in infos)
        self._metainfo.update(
            split=self.split,
            num_images=len(infos),
            num_pids=int(np.unique(self._pids).size),
            num_cams=int(np.unique(self._camids).size))

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        # Capture the ids while ``data_list`` still exists.
        self._set_id_arrays(self.data_list)
        return super()._serialize_data()

    def full_init(self) -> None:
        """Load, filter, subset, record pid/camid arrays, serialise."""
        if self._fully_initialized:
            return
        super().full_init()
        if not self.serialize_data:
            self._set_id_arrays(self.data_list)

    def _rebuild_id_arrays(self) -> None:
        self._set_id_arrays([self.get_data_info(i) for i in range(len(self))])

    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        """In-place subset (see ``BaseDataset``); keeps the id arrays right."""
        super().get_subset_(indices)
        self._rebuild_id_arrays()

    def get_subset(self, indices: Union[Sequence[int],
                                        int]) -> 'BaseReIDDataset':
        """Subset copy (see ``BaseDataset``); keeps the id arrays right."""
        sub = super().get_subset(indices)
        sub._rebuild_id_arrays()
        return sub

    def _ensure_arrays(self) -> None:
        if not self._fully_initialized:
            self.full_init()
        if self._pids is None:
            self._rebuild_id_arrays()

    def get_pids(self) -> np.ndarray:
        """np.ndarray: Person ids of all samples, shape ``(N,)``, int64."""
        self._ensure_arrays()
        return self._pids.copy()

    def get_camids(self) -> np.ndarray:
        """np.ndarray: 0-based camera ids of all samples, ``(N,)``, int64."""
        self._ensure_arrays()
        return self._camids.copy()

    @property
    def num_pids(self) -> int:
        """int: Number of distinct person ids (pid 0 distractors count)."""
        self._ensure_arrays()
        return int(np.unique(self._pids).size)

    @property
    def num_cams(self) -> int:
        """int: Number of distinct cameras present in this split."""
        self._ensure_arrays()
        return int(np.unique(self._camids).size)

    @property
    def num_query(self) -> int:
        """int: Number of query entries (the first ones) of ``split='test'``;
        ``0`` for other splits."""
        self._ensure_arrays()
        return int(self._num_query)

    def __repr__(self) -> str:
        head = f'{type(self).__name__}(data_root={self.data_root!r}, ' \
               f'split={self.split!r}'
        if not self._fully_initialized:
            return head + ', not fully initialised)'
        return head + (f', num_images={len(self)}, num_pids={self.num_pids}, '
                       f'num_cams={self.num_cams})')
