# Copyright (c) mmreid_usl contributors. All rights reserved.
"""On resume, the config's learning rate wins over the checkpoint's.

Restarting after a NaN loss with a lower ``optim_wrapper.optimizer.lr``
needs this: without it the optimizer and scheduler state of the checkpoint
silently restored the old learning rate. Applied by
:class:`~.hook.WorkDirCheckpointHook` on resume only (``lr_from_config``).
"""
import logging
import math
from typing import Any, Dict, List

import torch
from mmengine.logging import print_log


def _group_lr(group: Dict) -> float:
    return float(group.get('initial_lr', group['lr']))


def _scale_scheduler_states(states: Any, factors: List[float]) -> None:
    if isinstance(states, dict):
        for value in states.values():
            _scale_scheduler_states(value, factors)
        return
    for state in states or []:
        if not isinstance(state, dict) or state.get('param_name') != 'lr':
            continue
        for key in ('base_values', '_last_value'):
            values = state.get(key)
            if isinstance(values, list) and len(values) == len(factors):
                state[key] = [v * f for v, f in zip(values, factors)]


def apply_config_lr(runner, checkpoint: dict) -> bool:
    """Rescale a resumed learning-rate state to the config's learning rate.

    Compares, group by group, the base learning rate of the optimizer built
    from the config (``initial_lr`` when a scheduler set it, else ``lr``)
    with the one stored in ``checkpoint['optimizer']``. When they differ,
    the stored ``lr`` / ``initial_lr`` and the ``base_values`` /
    ``_last_value`` of the stored ``lr`` schedulers are multiplied by
    ``config / checkpoint``, so the schedule continues with the same shape
    from the config's base value. Only a single optimizer (``OptimWrapper``)
    is handled; other layouts are left alone.

    Returns:
        bool: Whether the checkpoint was changed.
    """
    optim_state = checkpoint.get('optimizer')
    wrapper = getattr(runner, 'optim_wrapper', None)
    optimizer = getattr(wrapper, 'optimizer', None)
    # testing loads checkpoints before any optimizer is built (the wrapper
    # is still its config then): nothing to rescale
    if not isinstance(optim_state, dict) or \
            not isinstance(optimizer, torch.optim.Optimizer) or \
            'param_groups' not in optim_state:
        return False
    saved, current = optim_state['param_groups'], optimizer.param_groups
    if len(saved) != len(current):
        return False
    factors = []
    for old, new in zip(saved, current):
        old_lr, new_lr = _group_lr(old), _group_lr(new)
        factors.append(new_lr / old_lr if old_lr else 1.0)
    if all(math.isclose(f, 1.0, rel_tol=1e-9) for f in factors):
        return False
    before, old_base = float(saved[0]['lr']), _group_lr(saved[0])
    for group, factor, new in zip(saved, factors, current):
        group['lr'] = float(group['lr']) * factor
        if 'initial_lr' in group:
            group['initial_lr'] = _group_lr(new)
    _scale_scheduler_states(checkpoint.get('param_schedulers'), factors)
    print_log(
        'The learning rate of the config differs from the checkpoint\'s '
        f'({_group_lr(current[0]):.4g} vs {old_base:.4g} for param group '
        '0): the config wins. The schedule keeps its '
        f'shape, scaled by {factors[0]:.4g} (current lr {before:.4g} -> '
        f"{float(saved[0]['lr']):.4g}). Set "
        'default_hooks.checkpoint.lr_from_config=False to keep the '
        "checkpoint's.",
        logger='current',
        level=logging.WARNING)
    return True
