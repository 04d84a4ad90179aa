# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Generic helpers (checkpointing and run set-up live in
:mod:`mmreid_usl.engine.checkpointing`)."""
from .dist import all_gather_cat
from .misc import get_ori_model
from .setup_env import register_all_modules, setup_cpu_distributed

__all__ = [
    'all_gather_cat', 'get_ori_model', 'register_all_modules',
    'setup_cpu_distributed'
]
