# Copyright (c) mmreid_usl contributors. All rights reserved.
"""SyncNormBuffersHook: which buffers it averages; a no-op on one process.

The cross-rank behaviour is checked with two gloo processes in
``tests/test_engine/test_distributed.py`` (identical BN statistics).
"""
from types import SimpleNamespace

import torch
import torch.nn as nn

from mmreid_usl.engine.hooks import SyncNormBuffersHook
from mmreid_usl.engine.hooks.sync_norm_buffers_hook import norm_running_stats


def _model():
    return nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4),
        nn.InstanceNorm2d(4, track_running_stats=True),
        nn.BatchNorm1d(4, track_running_stats=False))


def test_norm_running_stats_selects_float_running_stats_only():
    model = _model()
    model.register_buffer('labels', torch.arange(3))  # int, not a norm stat
    stats = norm_running_stats(model)
    expected = [
        model[1].running_mean, model[1].running_var, model[2].running_mean,
        model[2].running_var
    ]
    assert len(stats) == len(expected)
    assert all(a is b for a, b in zip(stats, expected))


def test_single_process_is_a_no_op():
    model = _model()
    model.train()
    model[:3](torch.randn(2, 3, 5, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    SyncNormBuffersHook().after_train_epoch(SimpleNamespace(model=model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
