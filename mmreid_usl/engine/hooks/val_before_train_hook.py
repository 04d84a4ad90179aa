# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Evaluate the initialised model before the first training epoch."""
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
    the run has no validation loop.
    """

    # after CheckpointHook.before_train (VERY_LOW too, registered earlier),
    # which the validation's after_val_epoch needs
    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        """Evaluate if this is a fresh run with a val loop."""
        if runner.epoch > 0 or runner.iter > 0:
            return
        if runner._val_loop is None:
            return
        print_log('Evaluating the model at initialisation (epoch 0)',
                  logger='current')
        runner.val_loop.run()
