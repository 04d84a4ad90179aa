# Copyright (c) mmreid_usl contributors. All rights reserved.
"""BaseUSLReID: what every algorithm inherits."""
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.algorithms.base import BaseUSLReID
from mmreid_usl.registry import MODELS
from mmreid_usl.utils import register_all_modules
from tiny_config import tiny_model

register_all_modules()

#: Arguments an algorithm needs besides the encoder.
EXTRA_ARGS = {'SupervisedReID': dict(num_classes=4)}
ALGORITHMS = sorted(
    name for name, cls in MODELS.module_dict.items()
    if isinstance(cls, type) and issubclass(cls, BaseUSLReID))


def _build(name: str, **kwargs) -> BaseUSLReID:
    torch.manual_seed(0)
    return MODELS.build(
        dict(type=name, encoder=tiny_model()['encoder'],
             **EXTRA_ARGS.get(name, {}), **kwargs)).eval()


def test_every_algorithm_is_found():
    assert {'ClusterContrast', 'ICE', 'DCMIP', 'SupervisedReID',
            'Theory'} <= set(ALGORITHMS)


@pytest.mark.parametrize('name', ALGORITHMS)
def test_predict_honours_test_cfg_normalize(name):
    """``test_cfg.normalize=False`` gives the raw float32 features of the
    test encoder; the default (True) the L2-normalised ones, as before."""
    inputs = torch.randn(3, 3, 32, 16)
    default = _build(name)
    raw_model = _build(name, test_cfg=dict(normalize=False))
    raw_model.load_state_dict(default.state_dict())
    assert 'normalize' not in default.test_cfg  # the default is implied
    with torch.no_grad():
        feats = raw_model.extract_feat(inputs,
                                       raw_model.test_cfg['encoder'])
    raw = torch.stack([s.pred_feature for s in raw_model.predict(inputs)])
    norm = torch.stack([s.pred_feature for s in default.predict(inputs)])
    assert raw.dtype == torch.float32
    torch.testing.assert_close(raw, feats)
    torch.testing.assert_close(norm, F.normalize(feats, dim=1))
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))
    explicit = _build(name, test_cfg=dict(normalize=True))
    explicit.load_state_dict(default.state_dict())
    torch.testing.assert_close(
        torch.stack([s.pred_feature for s in explicit.predict(inputs)]),
        norm)


@pytest.mark.parametrize('name,kwargs,rows', [
    ('ClusterContrast', {}, False),
    ('ClusterContrast', dict(memory=dict(type='ClusterMemory',
                                         init_mode='random')), True),
    ('ICE', {}, True),
    ('DCMIP', {}, True),
    ('DCMIP', dict(instance_memory=None, loss_mip=None), False),
])
def test_needs_bank_rows_follows_the_memories(name, kwargs, rows):
    """Whether ``set_pseudo_labels`` reads bank rows (so the
    PseudoLabelHook must gather the banks): only memories built from the
    centroids read none."""
    model = _build(name, **kwargs)
    assert model.needs_bank_rows is rows
    assert model.needs_bank_rows == any(m.needs_bank_rows
                                        for m in model.memories)
