# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage

from mmreid_usl.engine.checkpointing import fits as checkpoint_fit
from mmreid_usl.engine.checkpointing.fits import (CheckpointMismatchError,
                                                  check_checkpoint_fits,
                                                  feature_prefixes)


def _net(width: int = 4, depth: int = 2) -> nn.Module:
    layers = [nn.Conv2d(3, width, 3)]
    for _ in range(depth - 1):
        layers += [nn.BatchNorm2d(width), nn.Conv2d(width, width, 1)]
    return nn.Sequential(*layers)


class _Algo(nn.Module):
    """The surface of BaseUSLReID the check uses: get_encoder(source)."""

    def __init__(self, width=4, depth=2, momentum=True):
        super().__init__()
        self.encoder = _net(width, depth)
        self.memory = nn.Linear(2, 2)
        self.register_buffer('pseudo_labels', torch.zeros(5, dtype=torch.long))
        if momentum:
            self.momentum_encoder = ExponentialMovingAverage(self.encoder)

    def get_encoder(self, source='student'):
        if source == 'momentum':
            return self.momentum_encoder
        if source != 'student':
            raise ValueError(source)
        return self.encoder


def test_prefixes_of_student_and_momentum():
    model = _Algo()
    assert feature_prefixes(model, ['student', 'momentum']) == [
        'encoder.', 'momentum_encoder.module.'
    ]


def test_matching_checkpoint_lists_the_ignored_parts(monkeypatch):
    logged = []
    monkeypatch.setattr(checkpoint_fit, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    model = _Algo()
    state = _Algo().state_dict()
    del state['memory.weight']  # e.g. a published model without memories
    state['proxy_memory.features'] = torch.zeros(2)
    report = check_checkpoint_fits(model, {'state_dict': state}, ['student'])
    assert set(report['checked']) == {
        k
        for k in model.state_dict() if k.startswith('encoder.')
    }
    assert 'proxy_memory.features' in report['ignored_checkpoint_keys']
    assert 'memory.weight' in report['ignored_model_keys']
    assert 'momentum_encoder.module.0.weight' in \
        report['ignored_checkpoint_keys']
    assert 'momentum_encoder.* ' in logged[0] and 'pseudo_labels' in \
        logged[0] and 'memory.*' in logged[0]


def test_checkpoint_of_another_algorithm_names_missing_keys():
    # a student-only checkpoint (e.g. Cluster Contrast) tested with the
    # momentum encoder (ICE's default)
    state = _Algo(momentum=False).state_dict()
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(_Algo(), {'state_dict': state}, ['momentum'],
                              name='cc.pth')
    msg = str(err.value)
    assert 'cc.pth' in msg and 'missing keys' in msg
    assert 'momentum_encoder.module.0.weight' in msg
    # the student is complete in it
    check_checkpoint_fits(_Algo(), {'state_dict': state}, ['student'])


def test_other_architecture_names_unexpected_and_shapes(tmp_path):
    path = str(tmp_path / 'deep.pth')
    torch.save({
        'state_dict': _Algo(width=8, depth=3).state_dict(),
        'meta': {}
    }, path)
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint_fits(_Algo(), path, ['student'])
    msg = str(err.value)
    assert path in msg
    assert 'unexpected keys (7): encoder.3.weight' in msg
    assert 'shape mismatch' in msg and 'encoder.0.weight (checkpoint ' \
        '(8, 3, 3, 3), model (4, 3, 3, 3))' in msg


def test_ddp_prefix_is_stripped():
    state = {f'module.{k}': v for k, v in _Algo().state_dict().items()}
    check_checkpoint_fits(_Algo(), state, ['student', 'momentum'])
