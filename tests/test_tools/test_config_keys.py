# Copyright (c) mmreid_usl contributors. All rights reserved.
"""No shipped config has top-level keys that nothing reads.

A helper variable such as ``batch_size = 64`` at the top level of a base
config is substituted when the file is parsed; it then shows in the merged
config and looks overridable, but ``--cfg-options batch_size=32`` changes
nothing. Helpers must be named ``__name`` (MMEngine drops them from the
parsed config).
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid_usl.utils.cfg_options import unconsumed_top_level_keys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_no_unconsumed_top_level_keys(path):
    unused = unconsumed_top_level_keys(Config.fromfile(path))
    assert not unused, (
        f'{osp.relpath(path, REPO)}: top-level keys {unused} are read by '
        'nothing (helper variables); rename them to __name so that they '
        'stay out of the parsed config.')
