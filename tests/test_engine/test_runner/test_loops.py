# Copyright (c) mmreid_usl contributors. All rights reserved.
from unittest.mock import MagicMock

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from torch.utils.data import DataLoader

from mmreid_usl.engine.runner.loops import MomentumValLoop
from mmreid_usl.structures import ReIDDataSample
from mmreid_usl.utils.deprecation import DeprecatedNameWarning


class _MeanFeature(BaseMetric):
    default_prefix = 'reid'

    def process(self, data_batch, data_samples):
        for s in data_samples:
            self.results.append(float(s['pred_feature'].sum()))

    def compute_metrics(self, results):
        return dict(mAP=sum(results) / len(results))


class _Model(torch.nn.Module):
    """student features are 1, momentum features are 2."""

    def __init__(self):
        super().__init__()
        self.test_cfg = dict(encoder='momentum')
        self.data_preprocessor = lambda data, training: data
        self.forward_calls = []

    def predict(self, inputs, data_samples):
        src = self.test_cfg['encoder']
        self.forward_calls.append(src)
        for s in data_samples:
            s.set_pred_feature(
                torch.full((1, ), 1. if src == 'student' else 2.))
        return data_samples


def test_one_pass_both_sources_prefixed_metrics():
    batches = [
        dict(
            inputs=torch.zeros(2, 1),
            data_samples=[ReIDDataSample(), ReIDDataSample()])
        for _ in range(3)
    ]
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda x: x)
    runner = MagicMock()
    runner.model = _Model()
    runner.build_evaluator = lambda cfg: Evaluator(_MeanFeature())
    loop = MomentumValLoop(runner, loader, evaluator=dict(type='Dummy'))
    metrics = loop.run()
    assert metrics['student/reid/mAP'] == 1.
    assert metrics['momentum/reid/mAP'] == 2.
    assert metrics['reid/mAP'] == 2.  # primary = test_cfg encoder
    assert runner.model.test_cfg['encoder'] == 'momentum'  # restored
    assert runner.model.forward_calls == ['student', 'momentum'] * 3
    hooks = [c.args[0] for c in runner.call_hook.call_args_list]
    assert hooks.count('after_val_iter') == 3
    assert hooks[-2:] == ['after_val_epoch', 'after_val']
    assert list(metrics)[0] == 'reid/mAP'  # save_best='auto' uses it


class _TwoEncoderModel(_Model):

    def __init__(self, same: bool):
        super().__init__()
        from mmreid_usl.models.utils.momentum_encoder import MomentumEncoder
        self.encoder = torch.nn.Linear(2, 2)
        self.momentum_encoder = MomentumEncoder(self.encoder)
        if not same:
            with torch.no_grad():
                self.momentum_encoder.module.weight.add_(1.)

    def get_encoder(self, source):
        return self.encoder if source == 'student' else self.momentum_encoder


def test_identical_encoders_are_evaluated_once():
    batches = [
        dict(
            inputs=torch.zeros(2, 1),
            data_samples=[ReIDDataSample(), ReIDDataSample()])
    ]
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda x: x)
    for same, calls in ((True, ['student']), (False, ['student', 'momentum'])):
        runner = MagicMock()
        runner.model = _TwoEncoderModel(same)
        runner.build_evaluator = lambda cfg: Evaluator(_MeanFeature())
        metrics = MomentumValLoop(runner, loader, evaluator=dict()).run()
        assert runner.model.forward_calls == calls
        assert 'momentum/reid/mAP' in metrics and 'reid/mAP' in metrics
        if same:
            assert metrics['momentum/reid/mAP'] == metrics[
                'student/reid/mAP'] == metrics['reid/mAP']


def test_sources_is_the_deprecated_name_of_encoders():
    batches = [
        dict(inputs=torch.zeros(2, 1),
             data_samples=[ReIDDataSample(), ReIDDataSample()])
    ]
    loader = DataLoader(batches, batch_size=None, collate_fn=lambda x: x)

    def run(**kwargs):
        runner = MagicMock()
        runner.model = _Model()
        runner.build_evaluator = lambda cfg: Evaluator(_MeanFeature())
        loop = MomentumValLoop(runner, loader, evaluator=dict(type='D'),
                               **kwargs)
        return loop, loop.run()

    new_loop, new = run(encoders=('student', ))
    with pytest.warns(DeprecatedNameWarning, match='`sources`'):
        old_loop, old = run(sources=('student', ))
    assert old_loop.encoders == new_loop.encoders == ('student', )
    assert old == new == {'reid/mAP': 1., 'student/reid/mAP': 1.}
    with pytest.warns(DeprecatedNameWarning):
        assert old_loop.sources == ('student', )
