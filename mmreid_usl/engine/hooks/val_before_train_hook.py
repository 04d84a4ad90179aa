# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Evaluate the initialised model before the first training epoch."""
from typing import Dict, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmreid_usl.registry import HOOKS


@HOOKS.register_module()
class ValBeforeTrainHook(Hook):
    """Run the validation loop once before training starts.

    Unsupervised ReID starts from an ImageNet (or random) encoder; its test
    mAP is the baseline every run should be compared with. The metrics are
    logged like any validation (``reid/mAP`` at epoch 0) and end up in
    ``vis_data/scalars.json``. Skipped when resuming (``epoch > 0``) or when
    the run has no validation loop. After training, one log line compares
    mAP and R1 at initialisation with the last validation, e.g.
    ``reid/mAP: 39.69 (init) -> 63.33 (epoch 12)``. The metrics at
    initialisation and the latest ones are stored in every checkpoint
    (``meta['val_before_train']``), so a resumed run still reports the line.
    """

    # after CheckpointHook.before_train (VERY_LOW too, registered earlier),
    # which the validation's after_val_epoch needs
    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._evaluating_init = False
        self._init_metrics: Optional[Dict[str, float]] = None
        self._last_metrics: Optional[Dict[str, float]] = None
        self._last_epoch = 0

    def before_train(self, runner) -> None:
        """Evaluate if this is a fresh run with a val loop."""
        if runner.epoch > 0 or runner.iter > 0:
            return
        if runner._val_loop is None:
            return
        print_log('Evaluating the model at initialisation (epoch 0)',
                  logger='current')
        self._evaluating_init = True
        runner.val_loop.run()
        self._evaluating_init = False

    def after_val_epoch(self, runner, metrics=None) -> None:
        """Remember the metrics at initialisation and the latest ones."""
        if not metrics:
            return
        if self._evaluating_init:
            self._init_metrics = dict(metrics)
        else:
            self._last_metrics = dict(metrics)
            self._last_epoch = runner.epoch

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the metrics at initialisation and the latest ones."""
        checkpoint.setdefault('meta', {})['val_before_train'] = dict(
            init=_floats(self._init_metrics),
            last=_floats(self._last_metrics),
            last_epoch=int(self._last_epoch))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore them when resuming (or loading) a checkpoint."""
        saved = checkpoint.get('meta', {}).get('val_before_train')
        if not isinstance(saved, dict):
            return
        if saved.get('init') is not None:
            self._init_metrics = dict(saved['init'])
        if saved.get('last') is not None:
            self._last_metrics = dict(saved['last'])
            self._last_epoch = int(saved.get('last_epoch', 0))

    def after_train(self, runner) -> None:
        """Log mAP and R1 at initialisation next to the final ones."""
        if self._init_metrics is None or self._last_metrics is None:
            return
        pairs = [
            f'{key}: {value:.2f} (init) -> {self._last_metrics[key]:.2f} '
            f'(epoch {self._last_epoch})'
            for key, value in self._init_metrics.items()
            if key in self._last_metrics and key.endswith(('mAP', '/R1'))
        ]
        print_log('Initialisation vs final: ' + '; '.join(pairs),
                  logger='current')


def _floats(metrics: Optional[Dict]) -> Optional[Dict[str, float]]:
    """Plain floats (checkpoints load with ``weights_only=True``)."""
    if metrics is None:
        return None
    out = {}
    for key, value in metrics.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out
