# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``RankConsistencyHook``: digests, the log line, and a mismatch named."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mmreid_usl.engine.hooks import RankConsistencyHook
from mmreid_usl.engine.hooks import rank_consistency_hook as mod
from mmreid_usl.engine.hooks.rank_consistency_hook import state_digests


class _Model(nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.register_buffer('mean_pos', torch.tensor(0.25))
        self.register_buffer('labels', torch.tensor([0, 1, -1]))


def _runner(model):
    return SimpleNamespace(model=model, epoch=3)


def test_digests_change_with_one_bit_and_filter_by_prefix():
    model = _Model()
    d1 = state_digests(model.state_dict())
    assert set(d1) == {'fc.weight', 'fc.bias', 'mean_pos', 'labels'}
    model.mean_pos += 1e-7
    d2 = state_digests(model.state_dict())
    assert d1['mean_pos'] != d2['mean_pos']
    assert d1['fc.weight'] == d2['fc.weight']
    assert set(state_digests(model.state_dict(), ['fc.'])) == {
        'fc.weight', 'fc.bias'}


def test_single_process_passes_and_logs_values(capsys):
    hook = RankConsistencyHook(log_values=['mean_pos'])
    assert hook.check(_runner(_Model())) == []


def test_mismatch_is_named(monkeypatch):
    model = _Model()
    other = state_digests(model.state_dict())
    other['labels'] = 'x'

    def fake_gather(obj):
        return [obj, other]

    monkeypatch.setattr(mod, 'all_gather_object', fake_gather)
    with pytest.raises(RuntimeError, match="labels"):
        RankConsistencyHook().check(_runner(model))
    assert RankConsistencyHook(on_mismatch='warn').check(
        _runner(model)) == ['labels']


def test_bad_arguments():
    with pytest.raises(ValueError, match='on_mismatch'):
        RankConsistencyHook(on_mismatch='ignore')
    with pytest.raises(KeyError, match='nope'):
        RankConsistencyHook(log_values=['nope']).check(_runner(_Model()))


@pytest.mark.parametrize('pair', ['duke2market', 'market2duke',
                                  'market2msmt17', 'duke2msmt17'])
def test_gds_configs_check_their_statistics(pair):
    """The GDS configs register the hook with names the model really has."""
    import os.path as osp

    from mmengine.config import Config

    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    repo = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(repo, f'configs/gds/gds-h_r50_{pair}.py'))
    (hook, ) = [h for h in cfg.custom_hooks
                if h['type'] == 'RankConsistencyHook']
    cfg.model.encoder.backbone.init_cfg = None
    cfg.model.encoder.backbone.depth = 18
    model = MODELS.build(cfg.model)
    assert set(hook['log_values']) <= set(model.state_dict())
