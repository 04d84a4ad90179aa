# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The synthetic pedestrian dataset: generated on first use, then cached.

The images come from :mod:`mmreid_usl.datasets.synthetic_renderer`; this
module only materialises them atomically in a cache folder and reads them
like Market-1501.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Dict, List, Optional

from mmengine.logging import print_log

from mmreid_usl.registry import DATASETS
from .reid_folder_dataset import ReIDFolderDataset
from .synthetic_renderer import (DEFAULT_GENERATOR_CFG, SYNTHETIC_VERSION,
                                 SyntheticGeneratorConfig,
                                 generate_synthetic_pedestrians)

__all__ = [
    'SyntheticPedestrians', 'ensure_synthetic_pedestrians',
    'generate_synthetic_pedestrians', 'synthetic_cache_root'
]

#: Environment variable naming the cache folder.
CACHE_ENV = 'MMREID_USL_CACHE'
#: File written last into a complete dataset folder (the generator config).
COMPLETE_MARKER = 'generator.json'


def synthetic_cache_root(generator_cfg: Dict) -> str:
    """Default folder of a generated dataset.

    ``$MMREID_USL_CACHE`` (default ``~/.cache/mmreid_usl``) /
    ``synthetic_pedestrians_<version>``, with a hash suffix of the config
    when it is not the default one.

    Args:
        generator_cfg (dict): The full generator config
            (:meth:`SyntheticGeneratorConfig.to_dict`).
    """
    base = os.environ.get(CACHE_ENV) or osp.join(
        osp.expanduser('~'), '.cache', 'mmreid_usl')
    name = f'synthetic_pedestrians_{SYNTHETIC_VERSION}'
    if generator_cfg != DEFAULT_GENERATOR_CFG:
        digest = hashlib.sha1(
            json.dumps(generator_cfg, sort_keys=True).encode()).hexdigest()
        name += '_' + digest[:8]
    return osp.join(base, name)


def ensure_synthetic_pedestrians(root: str, **generator_cfg) -> str:
    """Generate the dataset into ``root`` unless it is already complete.

    Generation writes to a temporary sibling folder, adds the marker file
    ``generator.json`` (the arguments) and renames the folder onto ``root``,
    so concurrent processes (e.g. distributed ranks) never see a partial
    dataset; a loser of the rename race discards its copy.

    Args:
        root (str): Dataset folder.
        **generator_cfg: Overrides of :class:`SyntheticGeneratorConfig`.

    Returns:
        str: ``root``.

    Raises:
        FileExistsError: ``root`` exists but is not a complete synthetic
            dataset.
    """
    marker = osp.join(root, COMPLETE_MARKER)
    if osp.isfile(marker):
        return root
    if osp.exists(root):
        raise FileExistsError(
            f'{root!r} exists but holds no {COMPLETE_MARKER}: it is not a '
            'complete synthetic dataset; remove it or choose another '
            'data_root.')
    parent = osp.dirname(osp.abspath(root))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=osp.basename(root) + '.tmp-', dir=parent)
    try:
        print_log(
            f'Generating the synthetic pedestrian dataset in {root}',
            logger='current')
        counts = generate_synthetic_pedestrians(tmp, **generator_cfg)
        with open(osp.join(tmp, COMPLETE_MARKER), 'w') as f:
            json.dump(dict(generator_cfg, counts=counts), f, sort_keys=True)
        try:
            os.rename(tmp, root)
        except OSError:
            if not osp.isfile(marker):
                raise
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


@DATASETS.register_module()
class SyntheticPedestrians(ReIDFolderDataset):
    """Synthetic pedestrians, generated on first use.

    The images are drawn by :func:`generate_synthetic_pedestrians` of
    :mod:`mmreid_usl.datasets.synthetic_renderer`.

    With the default generator (100 train ids, 50 test ids, 4 cameras, 3-4
    cameras per id, 2-4 images per camera, 128x64 images) the splits hold
    1,049 train images / 100 ids, 177 query and 350 gallery images / 50 ids
    (about 7 MB); generation takes about 2 s on one CPU core. Measured
    difficulty on the test split (mAP / R1, %): raw 32x16 pixels 37.4 /
    54.8, a random-init ResNet-18 11.7 / 19.2, so identity information is
    present but far from solved without learning; a 3-layer CNN trained
    from scratch with the true labels (cross-entropy, 64x32 input) reaches
    ~86 mAP after 5 epochs (~12 s on one CPU core), so it is learnable.

    Args:
        data_root (str, optional): Dataset folder. None means
            ``$MMREID_USL_CACHE/synthetic_pedestrians_v1`` (default
            ``~/.cache/mmreid_usl``), with a hash suffix for non-default
            ``generator_cfg``. Generated atomically if absent.
        split (str): ``'train'``, ``'query'``, ``'gallery'`` or ``'test'``.
        generator_cfg (dict, optional): Overrides of the generator's
            defaults, :class:`SyntheticGeneratorConfig` (in
            :mod:`mmreid_usl.datasets.synthetic_renderer`).
        **kwargs: See :class:`ReIDFolderDataset`.

    Raises:
        ValueError: Unknown ``generator_cfg`` keys or inconsistent camera
            ranges.
    """

    METAINFO: dict = dict(dataset_name='SyntheticPedestrians')

    def __init__(self,
                 data_root: Optional[str] = None,
                 split: str = 'train',
                 generator_cfg: Optional[Dict] = None,
                 **kwargs) -> None:
        self.generator_cfg = SyntheticGeneratorConfig.from_dict(
            generator_cfg).to_dict()
        if data_root is None:
            data_root = synthetic_cache_root(self.generator_cfg)
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Generate the data if needed, then read it like Market-1501."""
        ensure_synthetic_pedestrians(self.data_root, **self.generator_cfg)
        return super().load_data_list()
