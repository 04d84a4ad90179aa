# Copyright (c) mmreid_usl contributors. All rights reserved.
from unittest.mock import MagicMock

import pytest

from mmreid_usl.engine.hooks.momentum_update_hook import MomentumUpdateHook


class _Model:

    def __init__(self):
        self.calls = []

    def momentum_update(self, momentum=None):
        self.calls.append(momentum)


def test_calls_model_momentum_update_after_iter():
    runner = MagicMock()
    runner.model = _Model()
    runner.iter = 0
    hook = MomentumUpdateHook()
    hook.before_run(runner)
    hook.after_train_iter(runner, 0)
    assert runner.model.calls == [None]
    MomentumUpdateHook(momentum=0.01).after_train_iter(runner, 1)
    assert runner.model.calls == [None, 0.01]


def test_requires_momentum_update():
    runner = MagicMock()
    runner.model = object()
    with pytest.raises(AttributeError):
        MomentumUpdateHook().before_run(runner)
