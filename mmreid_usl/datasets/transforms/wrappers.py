# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Several augmented views of one image (ICE / DCMIP)."""
from typing import Callable, List, Optional, Sequence, Union

from mmpretrain.datasets.transforms import MultiView as _MMPretrainMultiView

from mmreid_usl.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiView(_MMPretrainMultiView):
    """:class:`mmpretrain.datasets.transforms.MultiView`, one view per
    pipeline by default.

    ``results['img']`` becomes the list of the views' images, in pipeline
    order; :class:`PackReIDInputs` then packs ``inputs`` as a list of ``V``
    CHW tensors and ``ReIDDataPreprocessor`` stacks them into
    ``(V, B, C, H, W)``. ICE's strong / weak / strong views::

        dict(type='MultiView', transforms=[strong, weak, strong])

    The only additions to mmpretrain's class are ``num_views=None`` (one
    view per pipeline, keeping the order given) and ``img_shape`` set to the
    first view's shape (views of ReID pipelines share the output size).

    Args:
        transforms (list[list[dict | callable]]): One pipeline per view
            group.
        num_views (int | list[int], optional): Views of each pipeline.
            None means 1 each. Defaults to None.
    """

    def __init__(self,
                 transforms: Sequence[Sequence[Union[dict, Callable]]],
                 num_views: Optional[Union[int, List[int]]] = None) -> None:
        if num_views is None:
            num_views = [1] * len(transforms)
        super().__init__([list(t) for t in transforms], num_views)

    def transform(self, results: dict) -> dict:
        """Run every view pipeline on a copy of ``results``."""
        results = super().transform(results)
        results['img_shape'] = results['img'][0].shape[:2]
        return results
