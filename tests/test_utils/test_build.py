# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The package's one module-building helper (mmreid_usl.utils.build)."""
import glob
import os.path as osp
import re

import pytest
import torch.nn as nn

from mmreid_usl.registry import MODELS, TASK_UTILS
from mmreid_usl.utils import register_all_modules
from mmreid_usl.utils.build import build_module

register_all_modules()


def test_configs_are_built_and_objects_pass_through():
    neck = build_module(dict(type='BNNeck', in_channels=8))
    assert type(neck).__name__ == 'BNNeck'
    module = nn.Linear(2, 2)
    assert build_module(module) is module
    assert build_module(None) is None
    distance = object()
    assert build_module(distance, TASK_UTILS) is distance
    built = build_module(dict(type='DBSCANClusterer', eps=0.5), TASK_UTILS)
    assert type(built).__name__ == 'DBSCANClusterer'


def test_keys_are_checked_only_for_an_owner():
    cfg = dict(type='ClusterMemory', feat_dim=8, old_weigth=0.1)
    with pytest.raises(ValueError) as err:
        build_module(cfg, MODELS, owner='ClusterContrast', name='memory')
    msg = str(err.value)
    assert 'ClusterContrast: memory (ClusterMemory)' in msg
    assert "'old_weigth' -> 'old_weight'?" in msg
    # without an owner the class itself rejects the key
    with pytest.raises(TypeError):
        build_module(cfg, MODELS)


def test_no_build_if_dict_wrapper_is_left():
    """Components build through build_module, not wrappers of their own."""
    pkg = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'mmreid_usl')
    inline = re.compile(r'\.build\(\w+\)\s+if\s+isinstance')
    block = re.compile(r'isinstance\((\w+), dict\):\s*\n\s*\1 = \w+\.build\(')
    for path in glob.glob(osp.join(pkg, '**', '*.py'), recursive=True):
        with open(path, encoding='utf-8') as f:
            src = f.read()
        assert 'def _build(' not in src, path
        assert not inline.search(src) and not block.search(src), path
