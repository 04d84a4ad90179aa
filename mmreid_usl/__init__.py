# Copyright (c) mmreid_usl contributors. All rights reserved.
"""mmreid_usl: an OpenMMLab toolbox for unsupervised person re-identification.

Importing it registers nothing outside its own registries: weights-only
checkpoint loading is enabled by
:func:`mmreid_usl.engine.checkpointing.setup_runtime` (the tools,
``init_model``), by the Runner and by :func:`register_all_modules`.
"""
import warnings

import mmengine
from mmengine.utils import digit_version

from .version import __version__, version_info

MMENGINE_MIN, MMENGINE_MAX = '0.10.0', '1.0.0'
if not (digit_version(MMENGINE_MIN) <= digit_version(mmengine.__version__)
        < digit_version(MMENGINE_MAX)):
    warnings.warn(f'mmengine=={mmengine.__version__} is outside the tested '
                  f'range [{MMENGINE_MIN}, {MMENGINE_MAX}); please install '
                  f'mmengine>={MMENGINE_MIN},<{MMENGINE_MAX}.')

__all__ = ['__version__', 'version_info']
