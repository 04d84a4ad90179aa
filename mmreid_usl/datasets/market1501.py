# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Market-1501."""
from mmreid_usl.registry import DATASETS
from .reid_folder_dataset import ReIDFolderDataset


@DATASETS.register_module()
class Market1501(ReIDFolderDataset):
    """Market-1501 [1]_ (folder ``Market-1501-v15.09.15``).

    File names ``PPPP_cCsS_FFFFFF_BB.jpg`` (e.g. ``0002_c1s1_000451_03.jpg``)
    are parsed with ``r'^(-1|\\d+)_c(\\d+)'`` (anchored at the start of the
    name); as in the official code, cameras
    must lie in 1..6 and pids in 0..1501 (``-1`` junk is dropped, ``0``
    distractors stay in the gallery).

    Expected sizes (``docs/algorithms/common.md#datasets``):

    ============  ========  =====================
    split         images    identities
    ============  ========  =====================
    train         12,936    751 (relabelled 0..750)
    query         3,368     750
    gallery       15,913    751 (750 + pid 0)
    test          19,281    query + gallery
    ============  ========  =====================

    3,819 junk images of ``bounding_box_test`` are removed.

    Args:
        data_root (str): The ``Market-1501-v15.09.15`` folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        **kwargs: See :class:`ReIDFolderDataset`.

    References:
        .. [1] Zheng et al. "Scalable Person Re-identification: A Benchmark",
           ICCV 2015.
    """

    METAINFO: dict = dict(dataset_name='Market1501')

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        kwargs.setdefault('cam_range', (1, 6))
        kwargs.setdefault('pid_range', (0, 1501))
        super().__init__(data_root=data_root, split=split, **kwargs)
