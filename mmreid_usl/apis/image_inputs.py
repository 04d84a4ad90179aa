# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Input images of the inferencer: discovery, decoding and batching.

Images are paths, BGR ``uint8`` arrays (as ``mmcv.imread`` returns; an
``(N, H, W, 3)`` array is ``N`` images) or folders, searched recursively
for image files. Each goes through the config's test pipeline, its loading
step replaced for arrays. The dataset is tolerant on request: an image that
cannot be read becomes an :class:`Unreadable` record instead of an error,
so one bad file does not stop embedding a large folder.
"""
import os.path as osp
from collections import namedtuple
from pathlib import Path
from typing import Callable, Iterable, List, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.utils import ProgressBar, scandir
from torch.utils.data import Dataset

from mmreid_usl.registry import TRANSFORMS

InputType = Union[str, Path, np.ndarray, Sequence]

#: Image suffixes collected from folders (case-insensitive).
IMG_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
#: Default file-name pattern for pid / camera parsing (Market-1501 style).
DEFAULT_NAME_PATTERN = r'([-\d]+)_c(\d+)'
#: Transform types that read the image file (replaced for array inputs).
LOADERS = ('LoadReIDImage', 'LoadImageFromFile')
#: An input the pipeline could not read (kept picklable for workers).
Unreadable = namedtuple('Unreadable', ['index', 'name', 'reason'])


def list_images(inputs: InputType) -> list:
    """Flatten inputs: folders are expanded recursively (sorted).

    Args:
        inputs: A path, a folder, an array, or a list of them.

    Returns:
        list: Image paths (str) and arrays, in order.

    Raises:
        TypeError: A tensor or another type.
        FileNotFoundError: A path is neither a file nor a folder.
        ValueError: A folder holds no image file.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    elif isinstance(inputs, np.ndarray):
        inputs = list(inputs) if inputs.ndim == 4 else [inputs]
    elif isinstance(inputs, torch.Tensor):
        raise TypeError('pass images as paths or numpy arrays (HWC, '
                        'BGR uint8), not tensors.')
    items = []
    for item in inputs:
        if isinstance(item, np.ndarray):
            items.append(item)
            continue
        if not isinstance(item, (str, Path)):
            raise TypeError('inputs must be paths, folders or arrays, '
                            f'got {type(item).__name__}.')
        path = str(item)
        if osp.isdir(path):
            files = sorted(
                scandir(path,
                        suffix=IMG_SUFFIXES,
                        recursive=True,
                        case_sensitive=False))
            if not files:
                raise ValueError(
                    f'folder {path!r} holds no image file (searched '
                    f'recursively for {", ".join(IMG_SUFFIXES)}).')
            items += [osp.join(path, f) for f in files]
        elif osp.isfile(path):
            items.append(path)
        else:
            raise FileNotFoundError(
                f'{path!r} is neither an image file nor a folder.')
    return items


def image_names(items: list) -> List[str]:
    """The name of each item: its path, or ``'<array i>'``."""
    return [
        item if isinstance(item, str) else f'<array {i}>'
        for i, item in enumerate(items)
    ]


def config_name_pattern(cfg: Config) -> str:
    """The config's test dataset ``name_pattern``, or
    :data:`DEFAULT_NAME_PATTERN`."""
    return cfg.get('test_dataloader', {}).get('dataset', {}).get(
        'name_pattern', DEFAULT_NAME_PATTERN)


def as_bgr(img: np.ndarray, name: str) -> np.ndarray:
    """An HWC uint8 BGR image from an array input (gray is expanded).

    Raises:
        ValueError: Another shape or dtype.
    """
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f'{name}: an image array must be (H, W), (H, W, 3) '
                         f'or (H, W, 4), got shape {img.shape}.')
    if img.shape[2] == 4:
        img = img[..., :3]  # drop alpha
    if img.dtype != np.uint8:
        raise ValueError(f'{name}: image arrays must be uint8 (BGR, as '
                         f'mmcv.imread returns), got {img.dtype}.')
    return np.ascontiguousarray(img)


class ReIDInputPipeline:
    """Load a path or take an array, then run the config's test pipeline.

    Args:
        loader (Callable): The loading transform (for paths).
        transforms (Callable): The rest of the test pipeline.
    """

    def __init__(self, loader: Callable, transforms: Callable) -> None:
        self.loader = loader
        self.transforms = transforms

    @classmethod
    def from_config(cls, cfg: Config) -> 'ReIDInputPipeline':
        """The config's test pipeline, its loading step split off.

        Raises:
            ValueError: The config has no
                ``test_dataloader.dataset.pipeline``.
        """
        try:
            pipeline_cfg = list(cfg.test_dataloader.dataset.pipeline)
        except AttributeError as e:
            raise ValueError('the config has no test_dataloader.dataset.'
                             'pipeline to preprocess images with.') from e
        loader = None
        rest = []
        for t in pipeline_cfg:
            if str(t['type']).split('.')[-1] in LOADERS and loader is None:
                loader = TRANSFORMS.build(t)
            else:
                rest.append(TRANSFORMS.build(t))
        if loader is None:
            loader = TRANSFORMS.build(dict(type='LoadReIDImage'))
        return cls(loader, Compose(rest))

    def __call__(self, item: Union[str, np.ndarray], index: int,
                 name: str) -> dict:
        """The packed sample of one input (``sample_idx`` = ``index``).

        Raises:
            ValueError: The image cannot be read, or the pipeline drops it.
        """
        if isinstance(item, np.ndarray):
            img = as_bgr(item, name)
            results = dict(img=img,
                           img_shape=img.shape[:2],
                           ori_shape=img.shape[:2])
        else:
            results = self.loader(dict(img_path=str(item)))
            if results is None:
                raise ValueError(f'cannot read image file {name!r}.')
        results['img_path'] = name
        results['sample_idx'] = index
        packed = self.transforms(results)
        if packed is None:
            raise ValueError(f'the test pipeline dropped {name!r}.')
        packed['data_samples'].set_metainfo(
            dict(sample_idx=index, img_path=name))
        return packed


class InputDataset(Dataset):
    """Inputs in order; unreadable ones become :data:`Unreadable`.

    Args:
        items (list): Paths and arrays.
        names (list[str]): Their names (:func:`image_names`).
        pipeline (ReIDInputPipeline): Reads and transforms one input.
        skip_unreadable (bool): Return :data:`Unreadable` instead of
            raising for an input that cannot be read.
    """

    def __init__(self, items: list, names: List[str],
                 pipeline: ReIDInputPipeline, skip_unreadable: bool) -> None:
        self.items, self.names = items, names
        self.pipeline = pipeline
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:
            return self.pipeline(self.items[i], i, self.names[i])
        except Exception as e:  # noqa: B902 (decoders raise many types)
            if not self.skip_unreadable:
                raise
            return Unreadable(i, self.names[i], f'{type(e).__name__}: {e}')


def collate_readable(batch: list) -> tuple:
    """Collate the readable items; report the count and the unreadable.

    Returns:
        tuple: ``(batch or None, len(batch), unreadable)``.
    """
    good = [b for b in batch if not isinstance(b, Unreadable)]
    bad = [b for b in batch if isinstance(b, Unreadable)]
    return (default_collate(good) if good else None), len(batch), bad


def check_images(items: list, pipeline: Callable) -> int:
    """Read every item through ``pipeline`` (:class:`ReIDInputPipeline`).

    Returns:
        int: The number of items.

    Raises:
        ValueError: An image cannot be read or decoded (named).
    """
    for index, (item, name) in enumerate(zip(items, image_names(items))):
        pipeline(item, index, name)
    return len(items)


@torch.no_grad()
def collect_features(loader: Iterable, forward: Callable[[dict], list],
                     num_items: int, renormalize: bool,
                     show_progress: bool) -> Tuple[list, List[Unreadable]]:
    """Run a loader of :func:`collate_readable` batches through a model.

    Args:
        loader (Iterable): Yields ``(batch or None, count, unreadable)``.
        forward (Callable): ``forward(batch)`` -> samples with
            ``pred_feature`` and ``sample_idx``.
        num_items (int): Inputs in the loader.
        renormalize (bool): L2-normalise the features (a model evaluated
            on raw features).
        show_progress (bool): Show a progress bar.

    Returns:
        tuple: The float32 CPU feature of every input by ``sample_idx``
        (None for the unreadable ones) and the :data:`Unreadable` records.
    """
    progress = ProgressBar(num_items) if show_progress else None
    feats = [None] * num_items
    unreadable = []
    try:
        for batch, count, bad in loader:
            unreadable += bad
            if batch is not None:
                for sample in forward(batch):
                    feat = sample.pred_feature.float().cpu()
                    if renormalize:
                        feat = torch.nn.functional.normalize(feat, dim=0)
                    feats[sample.sample_idx] = feat
            if progress is not None:
                progress.update(count)
    finally:
        if progress is not None:
            progress.file.write('\n')
    return feats, unreadable


__all__ = [
    'DEFAULT_NAME_PATTERN', 'IMG_SUFFIXES', 'InputDataset',
    'ReIDInputPipeline', 'Unreadable', 'as_bgr', 'check_images',
    'collect_features', 'collate_readable', 'config_name_pattern',
    'image_names', 'list_images'
]
