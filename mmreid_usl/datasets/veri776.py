# Copyright (c) mmreid_usl contributors. All rights reserved.
"""VeRi-776 (vehicle re-identification)."""
from mmreid_usl.registry import DATASETS
from .reid_folder_dataset import ReIDFolderDataset

#: Sub-folder of each split in the VeRi-776 release.
VERI_SPLIT_DIRS = dict(
    train='image_train', query='image_query', gallery='image_test')


@DATASETS.register_module()
class VeRi776(ReIDFolderDataset):
    """VeRi-776 [1]_ (folder ``VeRi``): vehicle re-identification.

    ``image_train/``, ``image_query/`` and ``image_test/`` (the gallery) hold
    the images; file names ``VVVV_cCCC_FFFFFFFF_N.jpg`` (e.g.
    ``0001_c001_00016450_0.jpg``: vehicle 1, camera 1) are parsed with
    ``r'([-\\d]+)_c(\\d+)'``. As in the official Cluster Contrast / SpCL
    loaders, cameras must lie in 1..20 (stored 0..19) and vehicle ids in
    0..776. The list and XML files next to the folders (``name_*.txt``,
    ``train_label.xml``...) are not read. Evaluation is the person ReID
    protocol (same id AND same camera gallery entries are ignored).

    Expected sizes (Cluster Contrast, Table 1): train 37,746 images / 575 ids
    (relabelled 0..574); query 1,678 / 200 ids; gallery 11,579 / 200 ids;
    20 cameras.

    Args:
        data_root (str): The ``VeRi`` folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        **kwargs: See :class:`ReIDFolderDataset`.

    References:
        .. [1] Liu et al. "A Deep Learning-Based Approach to Progressive
           Vehicle Re-identification for Urban Surveillance", ECCV 2016.
    """

    METAINFO: dict = dict(dataset_name='VeRi776')

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        kwargs.setdefault('split_dirs', VERI_SPLIT_DIRS)
        kwargs.setdefault('cam_range', (1, 20))
        kwargs.setdefault('pid_range', (0, 776))
        super().__init__(data_root=data_root, split=split, **kwargs)
