# Copyright (c) mmreid_usl contributors. All rights reserved.
from .base_reid_dataset import BaseReIDDataset
from .dukemtmc_reid import DukeMTMCReID
from .market1501 import Market1501
from .msmt17 import MSMT17
from .personx import PersonX
from .reid_folder_dataset import ReIDFolderDataset
from .synthetic import (SyntheticPedestrians, ensure_synthetic_pedestrians,
                        generate_synthetic_pedestrians)
from .veri776 import VeRi776
from .samplers import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseReIDDataset', 'ReIDFolderDataset', 'Market1501', 'DukeMTMCReID',
    'MSMT17', 'PersonX', 'VeRi776', 'SyntheticPedestrians',
    'generate_synthetic_pedestrians', 'ensure_synthetic_pedestrians'
]
