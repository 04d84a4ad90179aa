# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The message raised when a loss becomes NaN / inf: what to do next.

Restarting from the last good checkpoint with a lower learning rate works
because the checkpoint hook (:class:`WorkDirCheckpointHook`) lets the
config's learning rate replace the one stored in the checkpoint's optimizer
and scheduler state when a run is resumed.

The restart command is the user's own: ``tools/train.py`` records its
command line (:func:`set_restart_command`) so that the advice keeps the
config, ``--work-dir``, flags and ``--cfg-options``; the checkpoint is the
last one *this run* saved or resumed from (never another run's newer file in
the same folder); the learning rate is a tenth of the lower of the run's and
the config file's (a run that diverged with an absurd ``--cfg-options`` lr
is pointed back to the config's).
"""
import os.path as osp
import shlex
from typing import Mapping, Optional, Sequence

from mmengine.logging import MessageHub

#: Runtime-info keys of the message hub the checkpoint hook fills in.
INFO_CONFIG = 'restart/config_file'
INFO_WORK_DIR = 'restart/work_dir'
INFO_LR = 'restart/base_lr'
#: MMEngine's own key: the last checkpoint the run saved (re-anchored to the
#: run's folder by the hook on resume).
INFO_LAST_CKPT = 'last_ckpt'

#: The ``--cfg-options`` key of the learning rate.
LR_KEY = 'optim_wrapper.optimizer.lr'

#: Options the restart command replaces or must not repeat.
_DROPPED_OPTIONS = (LR_KEY, 'load_from', 'resume', 'work_dir')

#: The command line of ``tools/train.py``, see :func:`set_restart_command`.
_command: Optional[dict] = None


def set_restart_command(config: str,
                        work_dir: str,
                        flags: Sequence[str] = (),
                        cfg_options: Sequence[str] = (),
                        config_lr: Optional[float] = None) -> None:
    """Record how this process was started, for the restart advice.

    Called by ``tools/train.py``; without it (the Runner API) the advice is
    built from what the checkpoint hook recorded.

    Args:
        config (str): The config file as given.
        work_dir (str): The resolved work dir.
        flags (Sequence[str]): Flags to repeat (e.g. ``['--amp']``), without
            ``--work-dir``, ``--resume`` or ``--cfg-options``.
        cfg_options (Sequence[str]): The ``--cfg-options`` tokens as typed
            (``key=value``).
        config_lr (float, optional): The learning rate of the config file
            itself (before ``--cfg-options``).
    """
    global _command
    _command = dict(
        config=config,
        work_dir=work_dir,
        flags=list(flags),
        cfg_options=[
            o for o in cfg_options
            if o.split('=', 1)[0] not in _DROPPED_OPTIONS
        ],
        config_lr=config_lr)


def _info(hub: Optional[MessageHub], key: str):
    if hub is None:
        return None
    try:
        return hub.get_info(key)
    except (KeyError, AttributeError):
        return None


def _number(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _scalar(value) -> float:
    """A loss term as a float (a tensor of the graph is detached first, so
    torch does not warn about ``requires_grad``)."""
    detach = getattr(value, 'detach', None)
    return float(detach() if detach is not None else value)


def suggested_lr(run_lr: Optional[float],
                 config_lr: Optional[float]) -> Optional[float]:
    """A tenth of the lower of the run's and the config file's lr."""
    known = [lr for lr in (run_lr, config_lr) if lr is not None and lr > 0]
    return min(known) / 10 if known else None


def nan_loss_message(log_vars: Mapping[str, float]) -> str:
    """Explain a non-finite loss and how to restart without losing work.

    Uses the command line recorded by :func:`set_restart_command` and what
    :class:`WorkDirCheckpointHook` recorded in the current message hub (the
    config file, work dir, base learning rate, and the last checkpoint of
    this run) to write the exact command::

        python tools/train.py CONFIG --work-dir WORK_DIR [FLAGS] \\
            --resume WORK_DIR/epoch_N.pth \\
            --cfg-options [OPTIONS] optim_wrapper.optimizer.lr=LR

    Outside a Runner (no recorded information) the command has
    placeholders.

    Args:
        log_vars (Mapping[str, float]): The loss terms of the batch, e.g.
            ``{'loss': nan, 'loss_cluster': nan}``.

    Returns:
        str: The message (several lines).
    """
    terms = ', '.join(f'{k}={_scalar(v):.4g}' for k, v in log_vars.items())
    try:
        hub = MessageHub.get_current_instance()
    except Exception:  # noqa: BLE001 (no hub: generic advice)
        hub = None
    command = _command or {}
    config = command.get('config') or _info(hub, INFO_CONFIG) or 'CONFIG'
    work_dir = _info(hub, INFO_WORK_DIR) or command.get('work_dir')
    run_lr = _number(_info(hub, INFO_LR))
    config_lr = _number(command.get('config_lr'))
    new_lr = suggested_lr(run_lr, config_lr)
    lr_text = f'{new_lr:.3g}' if new_lr is not None else 'LOWER_LR'
    options = command.get('cfg_options', []) + [f'{LR_KEY}={lr_text}']
    last = _info(hub, INFO_LAST_CKPT)
    ckpt = None
    if last and work_dir:
        own = osp.join(work_dir, osp.basename(str(last)))
        ckpt = own if osp.isfile(own) else None

    def restart(*middle: str) -> str:
        words = ['python', 'tools/train.py', config]
        if work_dir:
            words += ['--work-dir', work_dir]
        words += command.get('flags', []) + list(middle)
        words += ['--cfg-options'] + options
        return ' '.join(shlex.quote(w) for w in words)

    lines = [
        f'Non-finite loss ({terms}); training stopped before the optimiser '
        'step, so no saved weight is corrupted.'
    ]
    if ckpt:
        lines.append(
            'Restart from the last good checkpoint of this run with a lower '
            'learning rate (the config\'s lr then replaces the one stored in '
            'the checkpoint, and the schedule keeps its shape):\n'
            f'    {restart("--resume", ckpt)}')
    else:
        where = f' in {work_dir}' if work_dir else ''
        lines.append(
            f'This run has saved no checkpoint yet{where}: start again with a '
            f'lower learning rate:\n    {restart()}')
    if run_lr is not None and config_lr is not None and run_lr > config_lr:
        lines.append(f'(The run used lr={run_lr:.3g}, above the config '
                     f"file's {config_lr:.3g}; the suggestion starts from "
                     "the config's.)")
    lines.append('Other causes: --amp (try without it), or bad input images '
                 '(check the dataset).')
    return '\n'.join(lines)
