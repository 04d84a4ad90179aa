# Copyright (c) mmreid_usl contributors. All rights reserved.
"""What to do after a non-finite loss: the command that restarts the run.

On a NaN / inf loss the model raises
:class:`~mmreid_usl.models.NonFiniteLossError` (carrying the loss terms)
before the optimiser step; ``tools/train.py`` catches it and prints
:func:`restart_advice`. Restarting from the last good checkpoint with a
lower learning rate works because, on resume, the config's learning rate
replaces the one stored in the checkpoint (:mod:`.config_lr`).

The restart command is the user's own: the config, ``--work-dir``, flags and
``--cfg-options`` of the command line (minus the old ``lr``, ``load_from``
and ``resume``); the checkpoint is the last one *this run* saved or resumed
from (never another run's newer file in the same folder); the learning rate
is a tenth of the lower of the run's and the config file's (a run that
diverged with an absurd ``--cfg-options`` lr is pointed back to the
config's).
"""
import os.path as osp
import shlex
from typing import List, Mapping, Optional, Sequence

#: The ``--cfg-options`` key of the learning rate.
LR_KEY = 'optim_wrapper.optimizer.lr'

#: Options the restart command replaces or must not repeat.
_DROPPED_OPTIONS = (LR_KEY, 'load_from', 'resume', 'work_dir')


def cfg_option_tokens(argv: Sequence[str]) -> List[str]:
    """The ``--cfg-options`` tokens of a command line, as typed."""
    tokens, inside = [], False
    for arg in argv:
        if arg.startswith('--cfg-options='):
            tokens.append(arg.split('=', 1)[1])
            inside = False
        elif arg == '--cfg-options':
            inside = True
        elif arg.startswith('--'):
            inside = False
        elif inside:
            tokens.append(arg)
    return tokens


def config_lr(cfg) -> Optional[float]:
    """``optim_wrapper.optimizer.lr`` of a config, if it is a number."""
    try:
        lr = cfg.optim_wrapper.optimizer.lr
    except (AttributeError, KeyError, TypeError):
        return None
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        return None
    return float(lr)


def suggested_lr(run_lr: Optional[float],
                 config_lr: Optional[float]) -> Optional[float]:
    """A tenth of the lower of the run's and the config file's lr."""
    known = [lr for lr in (run_lr, config_lr) if lr is not None and lr > 0]
    return min(known) / 10 if known else None


def restart_advice(terms: Mapping[str, float],
                   config: str = 'CONFIG',
                   work_dir: Optional[str] = None,
                   flags: Sequence[str] = (),
                   cfg_options: Sequence[str] = (),
                   run_lr: Optional[float] = None,
                   config_lr: Optional[float] = None,
                   last_checkpoint: Optional[str] = None) -> str:
    """Explain a non-finite loss and how to restart without losing work::

        python tools/train.py CONFIG --work-dir WORK_DIR [FLAGS] \\
            --resume WORK_DIR/epoch_N.pth \\
            --cfg-options [OPTIONS] optim_wrapper.optimizer.lr=LR

    Args:
        terms (Mapping[str, float]): The loss terms of the batch, e.g.
            ``{'loss': nan, 'loss_cluster': nan}``.
        config (str): The config file as given.
        work_dir (str, optional): The run's work dir.
        flags (Sequence[str]): Flags to repeat (e.g. ``['--amp']``).
        cfg_options (Sequence[str]): The ``--cfg-options`` tokens as typed.
        run_lr (float, optional): The learning rate the run used.
        config_lr (float, optional): The config file's own learning rate
            (before ``--cfg-options``).
        last_checkpoint (str, optional): The last checkpoint this run saved
            or resumed from (MMEngine's ``last_ckpt``); looked up by file
            name in ``work_dir``.

    Returns:
        str: The message (several lines).
    """
    text = ', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())
    new_lr = suggested_lr(run_lr, config_lr)
    lr_text = f'{new_lr:.3g}' if new_lr is not None else 'LOWER_LR'
    options = [
        o for o in cfg_options if o.split('=', 1)[0] not in _DROPPED_OPTIONS
    ] + [f'{LR_KEY}={lr_text}']
    ckpt = None
    if last_checkpoint and work_dir:
        own = osp.join(work_dir, osp.basename(str(last_checkpoint)))
        ckpt = own if osp.isfile(own) else None

    def restart(*middle: str) -> str:
        words = ['python', 'tools/train.py', config]
        if work_dir:
            words += ['--work-dir', work_dir]
        words += list(flags) + list(middle)
        words += ['--cfg-options'] + options
        return ' '.join(shlex.quote(w) for w in words)

    lines = [
        f'Non-finite loss ({text}); training stopped before the optimiser '
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
