# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Dict-typed arguments reject unknown keys (issue 24, case 7)."""
import pytest
import torch.nn as nn

from mmreid_usl.models.utils.dict_args import (accepted_init_keys,
                                               check_dict_keys)
from mmreid_usl.registry import MODELS
from mmreid_usl.utils import register_all_modules
from tiny_config import tiny_model

register_all_modules()


def _build(**changes):
    cfg = tiny_model()
    cfg.update(changes)
    return MODELS.build(cfg)


def test_a_misspelt_test_cfg_key_is_rejected():
    # --cfg-options model.test_cfg.source=momentum tested the student, rc 0
    with pytest.raises(ValueError) as err:
        _build(test_cfg=dict(source='momentum'))
    msg = str(err.value)
    assert "ClusterContrast: test_cfg has the unknown key(s) ['source']" in msg
    assert "accepted keys: ['encoder', 'normalize']" in msg
    with pytest.raises(ValueError, match="'encodr' -> 'encoder'\\?"):
        _build(test_cfg=dict(encodr='momentum'))
    assert _build(test_cfg=dict(encoder='student')).test_cfg == dict(
        encoder='student')


def test_theory_test_cfg_also_takes_normalize():
    from tiny_config import TINY_MODEL
    model = MODELS.build(
        dict(
            type='Theory',
            encoder=TINY_MODEL['encoder'],
            test_cfg=dict(normalize=False)))
    assert model.test_cfg['normalize'] is False
    with pytest.raises(ValueError, match="'normalise' -> 'normalize'"):
        MODELS.build(
            dict(
                type='Theory',
                encoder=TINY_MODEL['encoder'],
                test_cfg=dict(normalise=False)))


def test_memory_and_loss_keys_are_checked_naming_the_accepted_ones():
    with pytest.raises(ValueError) as err:
        _build(memory=dict(type='ClusterMemory', old_weigth=0.1))
    msg = str(err.value)
    assert 'ClusterContrast: memory (ClusterMemory)' in msg
    assert "'old_weigth' -> 'old_weight'?" in msg
    assert 'update_mode' in msg  # the accepted keys are listed
    with pytest.raises(ValueError, match=r'loss_cluster \(ClusterNCELoss\)'):
        _build(loss_cluster=dict(type='ClusterNCELoss', temprature=0.05))


def test_accepted_init_keys_follow_kwargs_to_the_base_class():

    class Base(nn.Module):

        def __init__(self, a=1):
            super().__init__()

    class Child(Base):

        def __init__(self, b=2, **kwargs):
            super().__init__(**kwargs)

    class Open(nn.Module):

        def __init__(self, **kwargs):
            super().__init__()

    assert accepted_init_keys(Child) == {'a', 'b'}
    assert accepted_init_keys(Open) is None  # anything goes: not checked
    check_dict_keys('X', 'cfg', None, ['a'])
    check_dict_keys('X', 'cfg', dict(a=1), ['a'])
