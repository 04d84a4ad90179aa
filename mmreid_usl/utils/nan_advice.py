# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The message raised when a loss becomes NaN / inf: what to do next.

Restarting from the last good checkpoint with a lower learning rate works
because the checkpoint hook (:class:`WorkDirCheckpointHook`) lets the
config's learning rate replace the one stored in the checkpoint's optimizer
and scheduler state when a run is resumed.
"""
import os.path as osp
from typing import Mapping, Optional

from mmengine.logging import MessageHub

from .resume import list_checkpoints

#: Runtime-info keys of the message hub the checkpoint hook fills in.
INFO_CONFIG = 'restart/config_file'
INFO_WORK_DIR = 'restart/work_dir'
INFO_LR = 'restart/base_lr'


def _info(hub: Optional[MessageHub], key: str):
    if hub is None:
        return None
    try:
        return hub.get_info(key)
    except (KeyError, AttributeError):
        return None


def nan_loss_message(log_vars: Mapping[str, float]) -> str:
    """Explain a non-finite loss and how to restart without losing work.

    Reads the config file, work dir and base learning rate that
    :class:`WorkDirCheckpointHook` recorded in the current message hub, and
    the newest ``epoch_N.pth`` of the work dir, to write the exact command::

        python tools/train.py CONFIG --work-dir WORK_DIR \\
            --resume WORK_DIR/epoch_N.pth \\
            --cfg-options optim_wrapper.optimizer.lr=LR/10

    Outside a Runner (no recorded information) the command has
    placeholders.

    Args:
        log_vars (Mapping[str, float]): The loss terms of the batch, e.g.
            ``{'loss': nan, 'loss_cluster': nan}``.

    Returns:
        str: The message (several lines).
    """
    terms = ', '.join(f'{k}={float(v):.4g}' for k, v in log_vars.items())
    try:
        hub = MessageHub.get_current_instance()
    except Exception:  # noqa: BLE001 (no hub: generic advice)
        hub = None
    config = _info(hub, INFO_CONFIG) or 'CONFIG'
    work_dir = _info(hub, INFO_WORK_DIR)
    lr = _info(hub, INFO_LR)
    new_lr = f'{float(lr) / 10:.3g}' if isinstance(lr, (int, float)) \
        else 'LOWER_LR'
    lr_option = f'--cfg-options optim_wrapper.optimizer.lr={new_lr}'
    ckpts = list_checkpoints(work_dir) if work_dir else []
    lines = [
        f'Non-finite loss ({terms}); training stopped before the optimiser '
        'step, so no saved weight is corrupted.'
    ]
    if ckpts:
        wd = work_dir
        ckpt = osp.join(wd, osp.basename(ckpts[0]))
        lines.append(
            'Restart from the last good checkpoint with a lower learning '
            'rate (the config\'s lr then replaces the one stored in the '
            'checkpoint, and the schedule keeps its shape):\n'
            f'    python tools/train.py {config} --work-dir {wd} '
            f'--resume {ckpt} {lr_option}')
    else:
        where = f' in {work_dir}' if work_dir else ''
        lines.append(
            f'No checkpoint has been saved yet{where}: start again with a '
            f'lower learning rate:\n    python tools/train.py {config} '
            f'{lr_option}')
    lines.append('Other causes: --amp (try without it), or bad input images '
                 '(check the dataset).')
    return '\n'.join(lines)
