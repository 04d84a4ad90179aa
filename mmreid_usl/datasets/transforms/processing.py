# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Random erasing as the ReID papers' code does it."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms.utils import cache_randomness
from mmpretrain.datasets.transforms import RandomErasing

from mmreid_usl.registry import TRANSFORMS

#: uint8 values that the ImageNet normalisation maps onto the ImageNet mean,
#: v = 255 * mean * (1 + std), in BGR order (mmcv loads BGR):
#: B 126.8, G 142.3, R 152.0.
REID_ERASE_FILL_BGR = (127, 142, 152)


@TRANSFORMS.register_module()
class ReIDRandomErasing(RandomErasing):
    """Random erasing [1]_ with the sampling of the ReID reference code.

    mmpretrain's :class:`RandomErasing` draws a single rectangle with a
    log-uniform aspect ratio and clips it to the image. The code of Cluster
    Contrast / ICE / DCMIP (``docs/algorithms/common.md#augmentations``)
    instead tries up to
    ``max_attempts`` = 100 times:

    .. math::
        S_e \\sim U(s_l, s_h)\\,HW,\\quad r_e \\sim U(r_1, 1/r_1),\\quad
        h = \\operatorname{round}\\sqrt{S_e r_e},\\quad
        w = \\operatorname{round}\\sqrt{S_e / r_e},

    accepts the first rectangle with ``h < H`` and ``w < W``, places it
    uniformly and fills it; if no attempt fits the image is unchanged. This
    subclass only replaces the rectangle sampling (hand-written, no library
    has this rule); filling is mmpretrain's.

    Where it runs: the reference code erases the *normalised* tensor with
    the values (0.485, 0.456, 0.406). Our pipelines end with uint8 images and
    normalise in the data preprocessor, so erasing runs last on the uint8
    image and the default ``fill_color`` is the uint8 value that the
    preprocessor's ImageNet normalisation maps to those numbers,
    ``255 * mean * (1 + std)`` (BGR: 127, 142, 152), which reproduces the
    reference exactly up to uint8 rounding (|error| < 0.01 after
    normalisation). With ``to_rgb=False`` preprocessing or RGB loading, pass
    the RGB order (152, 142, 127).

    Args:
        erase_prob (float): Probability of erasing. Defaults to 0.5.
        min_area_ratio (float): ``s_l``. Defaults to 0.02.
        max_area_ratio (float): ``s_h`` (Theory/GDS use 0.2). Defaults to
            0.4.
        aspect_range (float | tuple[float, float]): ``r_1`` (the range is
            ``(r_1, 1/r_1)``) or an explicit range. Defaults to 0.3.
        max_attempts (int): Attempts before giving up. Defaults to 100.
        mode (str): ``'const'`` or ``'rand'`` (mmpretrain). Defaults to
            ``'const'``.
        fill_color (Sequence[Number] | Number): Fill value (image channel
            order). Defaults to :data:`REID_ERASE_FILL_BGR`.
        fill_std (Sequence[Number] | Number, optional): See mmpretrain.

    References:
        .. [1] Zhong et al. "Random Erasing Data Augmentation", AAAI 2020.
    """

    def __init__(
            self,
            erase_prob: float = 0.5,
            min_area_ratio: float = 0.02,
            max_area_ratio: float = 0.4,
            aspect_range: Union[float, Tuple[float, float]] = 0.3,
            max_attempts: int = 100,
            mode: str = 'const',
            fill_color: Union[Sequence[float], float] = REID_ERASE_FILL_BGR,
            fill_std: Optional[Union[Sequence[float], float]] = None) -> None:
        if isinstance(aspect_range, (int, float)):
            aspect_range = float(aspect_range)
        else:
            aspect_range = tuple(float(x) for x in aspect_range)
        super().__init__(
            erase_prob=float(erase_prob),
            min_area_ratio=float(min_area_ratio),
            max_area_ratio=float(max_area_ratio),
            aspect_range=aspect_range,
            mode=mode,
            fill_color=fill_color,
            fill_std=fill_std)
        self.max_attempts = int(max_attempts)

    @cache_randomness
    def random_patch(self, img_h: int,
                     img_w: int) -> Optional[Tuple[int, int, int, int]]:
        """Return ``(top, left, h, w)``, or None if no attempt fits."""
        for _ in range(self.max_attempts):
            area = np.random.uniform(self.min_area_ratio,
                                     self.max_area_ratio) * img_h * img_w
            aspect = np.random.uniform(*self.aspect_range)
            h = int(round(np.sqrt(area * aspect)))
            w = int(round(np.sqrt(area / aspect)))
            if h < img_h and w < img_w:
                top = np.random.randint(0, img_h - h + 1)
                left = np.random.randint(0, img_w - w + 1)
                return top, left, h, w
        return None

    def transform(self, results: dict) -> dict:
        """Erase one rectangle of ``results['img']`` (HWC) in place."""
        if self.random_disable():
            return results
        img = results['img']
        patch = self.random_patch(*img.shape[:2])
        if patch is not None:
            results['img'] = self._fill_pixels(img, *patch)
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', max_attempts={self.max_attempts})'
