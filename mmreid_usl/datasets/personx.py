# Copyright (c) mmreid_usl contributors. All rights reserved.
"""PersonX (Market-1501 layout)."""
from typing import Dict, Tuple

from mmreid_usl.registry import DATASETS
from .reid_folder_dataset import ReIDFolderDataset


@DATASETS.register_module()
class PersonX(ReIDFolderDataset):
    """PersonX [1]_, a synthetic person ReID dataset, in the Market-1501
    layout that Cluster Contrast reads (folder ``PersonX`` with
    ``bounding_box_train/``, ``query/``, ``bounding_box_test/``).

    File names are parsed with ``r'([-\\d]+)_c(\\d+)'`` (``<pid>_c<cam>``).
    The six cameras are numbered 3, 4, 8, 10, 11 and 12 in the file names;
    as in the official Cluster Contrast loader
    (https://github.com/alibaba/cluster-contrast-reid,
    ``clustercontrast/datasets/personx.py``) they are mapped in that order
    to ``camid`` 0..5, and any other camera number is an error.

    Expected sizes (Cluster Contrast, Table 1): train 9,840 images / 410 ids
    (relabelled 0..409); query 5,136 / 856 ids; gallery 30,816 / 856 ids;
    6 cameras.

    Args:
        data_root (str): The ``PersonX`` folder.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        **kwargs: See :class:`ReIDFolderDataset`.

    References:
        .. [1] Sun and Zheng. "Dissecting Person Re-identification from the
           Viewpoint of Viewpoint", CVPR 2019.
           https://arxiv.org/abs/1812.02162
    """

    METAINFO: dict = dict(dataset_name='PersonX')

    #: Camera number in the file name -> 0-based ``camid``.
    CAMERA_MAP: Dict[int, int] = {3: 0, 4: 1, 8: 2, 10: 3, 11: 4, 12: 5}

    def parse_name(self, path: str) -> Tuple[int, int]:
        """Return ``(raw_pid, camid)`` with ``camid`` in 0..5.

        Raises:
            ValueError: The name does not match the pattern, or its camera
                is not one of 3, 4, 8, 10, 11, 12.
        """
        pid, cam = super().parse_name(path)
        cam += 1  # the base class returns the file-name camera minus one
        if cam not in self.CAMERA_MAP:
            raise ValueError(
                f'{type(self).__name__}: camera {cam} of {path} is not one '
                f'of the PersonX cameras {tuple(self.CAMERA_MAP)}.')
        return pid, self.CAMERA_MAP[cam]
