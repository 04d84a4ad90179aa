# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Pack a ReID sample for the model."""
from typing import Sequence

from mmcv.transforms import BaseTransform
from mmpretrain.datasets.transforms import PackInputs

from mmreid_usl.registry import TRANSFORMS
from mmreid_usl.structures import ReIDDataSample


@TRANSFORMS.register_module()
class PackReIDInputs(BaseTransform):
    """Pack an image (or a list of views) and its ReID annotations.

    **Required keys:** ``img`` (HWC uint8 array, or a list of them from
    :class:`MultiView`), ``pid``.

    **Output keys:**

    - ``inputs``: CHW uint8 ``torch.Tensor`` (a list of ``V`` such tensors
      for multi-view input), converted by
      :meth:`mmpretrain.datasets.transforms.PackInputs.format_input`;
      normalisation happens in the data preprocessor.
    - ``data_samples``: :class:`ReIDDataSample` with ``gt_label`` = ``pid``
      and the meta keys present in the results (``sample_idx``, ``camid``,
      ``img_path``, ``is_query``, ``img_shape`` by default).

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when
            present.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('sample_idx', 'camid', 'img_path',
                                    'is_query', 'img_shape')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Return ``dict(inputs=..., data_samples=ReIDDataSample)``."""
        if 'img' not in results:
            raise KeyError('PackReIDInputs needs an "img" key; load the '
                           'image first (LoadReIDImage / LoadImageFromFile).')
        sample = ReIDDataSample()
        if 'pid' in results:
            sample.set_gt_label(results['pid'])
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(
            inputs=PackInputs.format_input(results['img']),
            data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
