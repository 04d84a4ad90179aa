# Copyright (c) mmreid_usl contributors. All rights reserved.
"""mmreid_usl: an OpenMMLab toolbox for unsupervised person re-identification.

Importing it registers nothing outside its own registries: the weights-only
allow-list is installed by
:func:`mmreid_usl.engine.checkpointing.enable_weights_only_loading`, which
every path that loads a checkpoint calls first (``load_weights_only``,
``init_model`` and the inferencer, the resume checks, the Runner, the tools
through :func:`~mmreid_usl.engine.checkpointing.setup_runtime`,
``tools/model_converters/publish_model.py``), as does
:func:`register_all_modules`.
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
