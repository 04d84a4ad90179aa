# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Validation of both the online (student) and the momentum encoder."""
import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.dist import broadcast_object_list
from mmengine.evaluator import Evaluator
from mmengine.model import BaseAveragedModel
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader

from mmreid_usl.registry import LOOPS
from mmreid_usl.utils.deprecation import renamed_attribute, renamed_kwargs
from mmreid_usl.utils.misc import get_ori_model


@LOOPS.register_module()
class MomentumValLoop(ValLoop):
    """Evaluate several encoders of one model in a single pass.

    Each batch is loaded and pre-processed once and then encoded by every
    encoder in ``encoders`` (``model.extract_feat(inputs, encoder)``,
    through ``model.predict`` with ``test_cfg['encoder']`` switched); each
    encoder has its own evaluator. The returned metrics carry the encoder as
    a prefix, e.g. ``student/reid/mAP`` and ``momentum/reid/mAP``, plus the
    un-prefixed keys (``reid/mAP`` ...) of the ``primary`` encoder, so
    checkpoint selection (``save_best='reid/mAP'``) and the logs keep
    working. ICE (Chen et al., ICCV 2021) deploys the momentum encoder, so
    its primary encoder is the model's ``test_cfg['encoder']``
    (``'momentum'``).

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The validation dataloader.
        evaluator (Evaluator | dict | list): The evaluator config; it is
            built once per encoder.
        fp16 (bool): Evaluate under autocast. Defaults to False.
        encoders (Sequence[str]): Encoders to evaluate. Defaults to
            ``('student', 'momentum')``. ``sources`` is its deprecated name.
        primary (str, optional): Encoder whose metrics are also reported
            without prefix. Defaults to the model's ``test_cfg['encoder']``.
        skip_identical (bool): When the network of an encoder is
            bit-identical to an earlier one (parameters and buffers, e.g.
            the momentum encoder at initialisation), reuse that encoder's
            metrics instead of encoding the data again (rank 0 decides).
            Defaults to True.
    """

    sources = renamed_attribute('sources', 'encoders')

    @renamed_kwargs(sources='encoders')
    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 encoders: Sequence[str] = ('student', 'momentum'),
                 primary: Optional[str] = None,
                 skip_identical: bool = True) -> None:
        if isinstance(evaluator, Evaluator):
            raise TypeError('MomentumValLoop builds one evaluator per '
                            'encoder; pass the evaluator config, not an '
                            'instance.')
        super().__init__(runner, dataloader, copy.deepcopy(evaluator), fp16)
        if not encoders:
            raise ValueError('encoders must not be empty')
        self.encoders = tuple(encoders)
        self.evaluators: Dict[str, Evaluator] = {}
        for name in self.encoders:
            ev = runner.build_evaluator(copy.deepcopy(evaluator))
            ev.dataset_meta = getattr(self.dataloader.dataset, 'metainfo',
                                      None)
            self.evaluators[name] = ev
        self.primary = primary
        self.skip_identical = skip_identical
        self._duplicates: Dict[str, str] = {}

    def _primary(self, model) -> str:
        primary = self.primary or model.test_cfg.get('encoder',
                                                     self.encoders[0])
        return primary if primary in self.encoders else self.encoders[0]

    def _find_duplicates(self, model) -> Dict[str, str]:
        """Map each encoder whose network equals an earlier one's to it."""
        duplicates: Dict[str, str] = {}
        if self.skip_identical and hasattr(model, 'get_encoder'):
            states: Dict[str, dict] = {}
            for name in self.encoders:
                enc = model.get_encoder(name)
                # BaseAveragedModel (MomentumEncoder) wraps the network
                enc = enc.module if isinstance(enc, BaseAveragedModel) \
                    else enc
                state = enc.state_dict()
                for prev, prev_state in states.items():
                    if prev_state.keys() == state.keys() and all(
                            torch.equal(prev_state[k], state[k])
                            for k in state):
                        duplicates[name] = prev
                        break
                else:
                    states[name] = state
        payload = [duplicates]
        broadcast_object_list(payload, src=0)
        return payload[0]

    def run(self) -> dict:
        """Run one validation pass and return the prefixed metrics."""
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        self._duplicates = self._find_duplicates(
            get_ori_model(self.runner.model))
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        size = len(self.dataloader.dataset)
        model = get_ori_model(self.runner.model)
        primary = self._primary(model)
        results = {
            src: ev.evaluate(size)
            for src, ev in self.evaluators.items()
            if src not in self._duplicates
        }
        for src, same in self._duplicates.items():
            results[src] = dict(results[same])
        # un-prefixed primary keys first: CheckpointHook(save_best='auto')
        # picks the first metric
        metrics = dict(results[primary])
        for name, res in results.items():
            metrics.update({f'{name}/{k}': v for k, v in res.items()})
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """Pre-process a batch once and encode it with every encoder."""
        self.runner.call_hook(
            'before_val_iter', batch_idx=idx, data_batch=data_batch)
        model = get_ori_model(self.runner.model)
        saved = model.test_cfg.get('encoder')
        primary = self._primary(model)
        primary_outputs = None
        with autocast(enabled=self.fp16):
            data = model.data_preprocessor(data_batch, False)
            try:
                for name in self.encoders:
                    if name in self._duplicates:
                        continue
                    model.test_cfg['encoder'] = name
                    outputs = model.predict(data['inputs'],
                                            data['data_samples'])
                    # the metric keeps this encoder's features before the
                    # next one overwrites ``pred_feature``
                    self.evaluators[name].process(
                        data_samples=outputs, data_batch=data_batch)
                    if name == self._duplicates.get(primary, primary):
                        primary_outputs = list(outputs)
            finally:
                model.test_cfg['encoder'] = saved
        self.runner.call_hook(
            'after_val_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=primary_outputs)
