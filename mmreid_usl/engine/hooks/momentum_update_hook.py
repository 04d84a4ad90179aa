# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Updates the model's momentum (EMA) encoder after each optimiser step."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreid_usl.registry import HOOKS

DATA_BATCH = Optional[Sequence[dict]]


@HOOKS.register_module()
class MomentumUpdateHook(Hook):
    r"""Call ``model.momentum_update()`` after every training iteration.

    The algorithms with a momentum encoder (:class:`BaseMomentumUSLReID`:
    ICE, Chen et al., ICCV 2021, Eq. 1; DCMIP) update it with
    :math:`\theta_m \leftarrow \alpha\theta_m + (1-\alpha)\theta_s` after the
    optimiser step; their config base declares this hook. The update lives in a hook (the shape of mmdet's
    ``MeanTeacherHook``) because ``after_train_iter`` runs after
    ``optim_wrapper.update_params``, and because a wrapped DDP model's
    ``train_step`` would bypass a model-level override.

    Args:
        momentum (float, optional): mmengine convention, the weight of the NEW
            (online) parameters (paper alpha=0.999 => 0.001). None uses the
            model's own ``momentum``. Defaults to None.
        interval (int): Update every ``interval`` iterations (use the
            gradient-accumulation count so the EMA follows real optimiser
            steps). Defaults to 1.
    """

    priority = 'NORMAL'

    def __init__(self,
                 momentum: Optional[float] = None,
                 interval: int = 1) -> None:
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        self.momentum = momentum
        self.interval = interval

    def before_run(self, runner) -> None:
        """Check that the model has a ``momentum_update`` method."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'momentum_update'):
            raise AttributeError(
                f'{type(model).__name__} has no momentum_update(); '
                'MomentumUpdateHook needs a model with a momentum encoder.')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """EMA step after the optimiser step of this iteration."""
        if not self.every_n_train_iters(runner, self.interval):
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if self.momentum is None:
            model.momentum_update()
        else:
            model.momentum_update(self.momentum)
