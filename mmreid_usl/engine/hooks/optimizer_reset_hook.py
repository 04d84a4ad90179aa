# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Re-create the optimiser at the start of given epochs (a new stage)."""
import copy
import logging
from typing import Dict, List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper, OptimWrapperDict

from mmreid_usl.registry import HOOKS


def _wrappers(optim_wrapper) -> Dict[str, OptimWrapper]:
    if isinstance(optim_wrapper, OptimWrapperDict):
        return dict(optim_wrapper.items())
    return {'': optim_wrapper}


def reset_optim_wrapper(optim_wrapper, fresh) -> None:
    """Give ``optim_wrapper`` the state of the freshly built ``fresh``.

    Every optimiser takes the state dict of its fresh counterpart: empty
    per-parameter state (Adam's moments and step count, SGD's momentum
    buffers), the hyper-parameters of the config, a new loss scaler under
    AMP. The objects are kept, so the parameter schedulers, which hold the
    optimiser, keep scheduling it. The ``initial_<name>`` values the
    schedulers recorded (the base values, after any ``auto_scale_lr``) are
    kept, and every scheduled value (``lr``, ...) goes back to its initial
    one: the optimiser is then what the config builds at step 0, as if it
    and its schedulers had just been created.

    Args:
        optim_wrapper (OptimWrapper | OptimWrapperDict): The runner's.
        fresh (OptimWrapper | OptimWrapperDict): Built from the config over
            the same model (same parameter groups).
    """
    old, new = _wrappers(optim_wrapper), _wrappers(fresh)
    if old.keys() != new.keys():
        raise ValueError('the rebuilt optimiser wrappers '
                         f'{sorted(new)} differ from the running ones '
                         f'{sorted(old)}')
    for name, wrapper in old.items():
        groups = wrapper.optimizer.param_groups
        initial: List[dict] = [{
            key: value
            for key, value in group.items() if key.startswith('initial_')
        } for group in groups]
        state = new[name].state_dict()
        if len(state['param_groups']) != len(groups):
            raise ValueError(
                f'the rebuilt optimiser {name!r} has '
                f"{len(state['param_groups'])} parameter groups, the running "
                f'one {len(groups)}')
        wrapper.load_state_dict(state)
        for group, keep in zip(wrapper.optimizer.param_groups, initial):
            for key, value in keep.items():
                group[key] = value
                group[key[len('initial_'):]] = value


@HOOKS.register_module()
class OptimizerResetHook(Hook):
    """Re-create the optimiser from the config at the start of some epochs.

    A two-stage recipe that builds a new optimiser for its second stage
    (the unofficial DCMIP code: a new Adam and StepLR for stage 2) runs as
    one schedule: at the start of every (0-based) epoch in ``epochs`` the
    running optimiser gets the state of one freshly built from
    ``optim_wrapper`` (by default the config's ``optim_wrapper``), see
    :func:`reset_optim_wrapper`: no moments, the config's learning rate.

    The learning-rate schedule of the new stage is a segment of the
    config's ``param_scheduler`` starting at that epoch (``begin=E``), e.g.
    two ``StepLR(step_size=20)`` segments ``[0, 40)`` and ``[40, 90)``: the
    schedulers are chained (they scale the current value), so the second
    one starts from the reset learning rate exactly as a new scheduler
    would. The reset state is the optimiser's, saved in every checkpoint:
    a run resumed after ``E`` continues the new stage exactly, and one
    resumed from the checkpoint at the end of epoch ``E - 1`` is reset
    again when epoch ``E`` starts.

    Args:
        epochs (Sequence[int]): 0-based epochs at whose start the optimiser
            is re-created (epoch ``E`` = after ``E`` epochs of training).
        optim_wrapper (dict, optional): Config of the new optimiser.
            Defaults to None: the runner config's ``optim_wrapper`` (with
            ``--amp`` the AMP wrapper ``tools/train.py`` put there).
    """

    priority = 'NORMAL'

    def __init__(self,
                 epochs: Sequence[int],
                 optim_wrapper: Optional[dict] = None) -> None:
        if isinstance(epochs, int):
            epochs = [epochs]
        epochs = list(epochs)
        if not epochs or not all(
                isinstance(e, int) and not isinstance(e, bool) and e > 0
                for e in epochs):
            raise ValueError('epochs must be a non-empty list of ints > 0 '
                             f'(epoch 0 starts with a new optimiser '
                             f'anyway), got {epochs!r}')
        self.epochs = sorted(set(epochs))
        self.optim_wrapper = optim_wrapper

    def before_train_epoch(self, runner) -> None:
        """Re-create the optimiser if this epoch starts a new stage."""
        if runner.epoch not in self.epochs:
            return
        cfg = self.optim_wrapper
        if cfg is None:
            cfg = runner.cfg.get('optim_wrapper')
        if cfg is None:
            raise ValueError('OptimizerResetHook needs an optim_wrapper '
                             'config (the hook argument or the config\'s).')
        fresh = runner.build_optim_wrapper(copy.deepcopy(cfg))
        reset_optim_wrapper(runner.optim_wrapper, fresh)
        lrs = [
            group['lr'] for wrapper in _wrappers(runner.optim_wrapper).values()
            for group in wrapper.optimizer.param_groups
        ]
        print_log(
            f'Epoch {runner.epoch}: the optimiser is re-created from the '
            f'config (state cleared, lr {lrs[0]:.4g}).',
            logger='current',
            level=logging.INFO)
