# Copyright (c) mmreid_usl contributors. All rights reserved.
"""mmreid_usl: an OpenMMLab toolbox for unsupervised person re-identification."""
import warnings

import mmengine
from mmengine.utils import digit_version

# mmcv-lite (the declared requirement) has no compiled ops; mmpretrain's
# import of mmcv.cnn warns about one we never use.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from .utils.checkpoint_safety import \
    allow_mmengine_checkpoint_globals  # noqa: E402
from .version import __version__, version_info  # noqa: E402

MMENGINE_MIN, MMENGINE_MAX = '0.10.0', '1.0.0'
if not (digit_version(MMENGINE_MIN) <= digit_version(mmengine.__version__)
        < digit_version(MMENGINE_MAX)):
    warnings.warn(f'mmengine=={mmengine.__version__} is outside the tested '
                  f'range [{MMENGINE_MIN}, {MMENGINE_MAX}); please install '
                  f'mmengine>={MMENGINE_MIN},<{MMENGINE_MAX}.')

# torch>=2.6 loads checkpoints with weights_only=True; mmengine writes a few
# non-tensor objects (HistoryBuffer, numpy arrays/scalars) into them.
allow_mmengine_checkpoint_globals()

__all__ = ['__version__', 'version_info']
