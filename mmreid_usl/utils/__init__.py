# Copyright (c) mmreid_usl contributors. All rights reserved.
from .checkpoint_safety import (allow_mmengine_checkpoint_globals,
                                setup_runtime, silence_known_warnings)
from .dist import all_gather_cat
from .misc import get_ori_model
from .nan_advice import nan_loss_message
from .safe_url_loader import (load_url_weights_only,
                              register_weights_only_url_loaders)
from .setup_env import register_all_modules, setup_cpu_distributed

__all__ = [
    'allow_mmengine_checkpoint_globals', 'all_gather_cat', 'get_ori_model',
    'load_url_weights_only', 'nan_loss_message',
    'register_weights_only_url_loaders',
    'register_all_modules', 'setup_cpu_distributed', 'setup_runtime',
    'silence_known_warnings'
]
