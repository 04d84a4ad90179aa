# Copyright (c) mmreid_usl contributors. All rights reserved.
"""mmreid_usl: an OpenMMLab toolbox for unsupervised person re-identification."""
import warnings

import mmengine
from mmengine.utils import digit_version

from .utils.checkpoint_safety import allow_mmengine_checkpoint_globals
from .utils.safe_url_loader import register_weights_only_url_loaders
from .version import __version__, version_info

MMENGINE_MIN, MMENGINE_MAX = '0.10.0', '1.0.0'
if not (digit_version(MMENGINE_MIN) <= digit_version(mmengine.__version__)
        < digit_version(MMENGINE_MAX)):
    warnings.warn(f'mmengine=={mmengine.__version__} is outside the tested '
                  f'range [{MMENGINE_MIN}, {MMENGINE_MAX}); please install '
                  f'mmengine>={MMENGINE_MIN},<{MMENGINE_MAX}.')

# torch>=2.6 loads checkpoints with weights_only=True; mmengine writes a few
# non-tensor objects (HistoryBuffer, numpy arrays/scalars) into them. This
# only adds those exact globals to torch's allow-list; nothing is patched.
# (The warning filter for mmcv-lite's missing ops is set by the tools, see
# mmreid_usl.utils.setup_runtime, not on import.)
allow_mmengine_checkpoint_globals()
# MMEngine's http(s):// and torchvision:// loaders unpickle with
# weights_only=False; these register the same schemes weights-only.
register_weights_only_url_loaders()

__all__ = ['__version__', 'version_info']
