# Copyright (c) mmreid_usl contributors. All rights reserved.
"""MMEngine's CheckpointHook confined to the run's own work dir."""
import logging
import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmreid_usl.registry import HOOKS
from mmreid_usl.utils.nan_advice import INFO_CONFIG, INFO_LR, INFO_WORK_DIR
from mmreid_usl.utils.resume import find_resume_checkpoint


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _ConfinedBackend:
    """A file backend whose ``remove`` / ``rmtree`` only act inside a folder.

    Everything else is delegated to the wrapped backend.
    """

    def __init__(self, backend, folder: str) -> None:
        self._backend = backend
        self._folder = folder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def _allowed(self, path: str) -> bool:
        if _inside(path, self._folder):
            return True
        print_log(
            f'Not deleting {path}: it is outside the checkpoint folder '
            f'{self._folder} of this run.',
            logger='current',
            level=logging.WARNING)
        return False

    def remove(self, path: str) -> None:
        if self._allowed(path):
            self._backend.remove(path)

    def rmtree(self, path: str) -> None:
        if self._allowed(path):
            self._backend.rmtree(path)


@HOOKS.register_module()
class WorkDirCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` that never leaves its work dir.

    MMEngine stores absolute paths (``last_checkpoint``, the best
    checkpoint in the message hub) and acts on them after a resume, so a
    copied work dir resumed from the original's files and deleted the
    original's best checkpoint. This hook keeps all bookkeeping relative to
    the checkpoint folder of the *current* run (``work_dir``, or
    ``out_dir/<work_dir name>`` as in MMEngine):

    - **auto-resume** (``resume=True`` without ``load_from``, i.e.
      ``tools/train.py --resume``): the newest readable ``epoch_N.pth`` of
      the folder itself; an empty folder is an error
      (:class:`~mmreid_usl.utils.resume.ResumeError`), an unreadable newest
      checkpoint is an error naming the previous readable one, or — with
      ``resume_fallback=True`` — a warning and a resume from it;
    - ``last_checkpoint`` holds the file name relative to the work dir;
    - the best checkpoint and the kept checkpoints recorded in a resumed
      message hub are looked up by file name in this folder (a best
      checkpoint of another folder is forgotten, never deleted);
    - files are only ever deleted inside this folder.

    It also lets the config's learning rate win over the checkpoint's when
    they differ on resume (``lr_from_config``): the optimizer's and the
    schedulers' learning-rate state is rescaled by ``config lr / checkpoint
    lr`` with a warning, so restarting after a NaN with a lower ``lr``
    works. Finally it records the config file, work dir and base learning
    rate for the NaN advice (:func:`mmreid_usl.utils.nan_loss_message`).

    Args:
        resume_fallback (bool): Resume from the previous readable checkpoint
            when the newest one is unreadable. Defaults to False.
        lr_from_config (bool): On resume, apply the config's learning rate
            when it differs from the checkpoint's. Defaults to True.
        **kwargs: Arguments of :class:`mmengine.hooks.CheckpointHook`.
    """

    def __init__(self,
                 *args,
                 resume_fallback: bool = False,
                 lr_from_config: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume_fallback = resume_fallback
        self.lr_from_config = lr_from_config

    # ------------------------------------------------------------------
    def _ckpt_dir(self, runner) -> str:
        """The folder checkpoints go to, as ``CheckpointHook`` computes it."""
        if self.out_dir is None or self.out_dir == runner.work_dir:
            return runner.work_dir
        if getattr(self, 'file_backend', None) is not None:
            return self.out_dir  # already joined in before_train
        return osp.join(self.out_dir,
                        osp.basename(runner.work_dir.rstrip(osp.sep)))

    def before_run(self, runner) -> None:
        """Pick the checkpoint of an auto-resume inside this folder."""
        if getattr(runner, '_resume', False) and \
                getattr(runner, '_load_from', None) is None:
            path = find_resume_checkpoint(
                self._ckpt_dir(runner), fallback=self.resume_fallback)
            print_log(
                f'Auto-resume: the newest checkpoint of this work dir is '
                f'{path}.',
                logger='current')
            runner._load_from = path

    def _own(self, path: Optional[str]) -> Optional[str]:
        """``path``'s file name in this run's folder, if it exists there."""
        if not path:
            return None
        own = osp.join(self.out_dir, osp.basename(str(path)))
        return own if osp.exists(own) else None

    def before_train(self, runner) -> None:
        """Confine deletions and re-anchor resumed paths to this folder."""
        super().before_train(runner)
        self.file_backend = _ConfinedBackend(self.file_backend, self.out_dir)
        hub = runner.message_hub
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                old = self.best_ckpt_path
                self.best_ckpt_path = self._own(old)
                self._report_reanchor('best checkpoint', old,
                                      self.best_ckpt_path)
                if 'best_ckpt' in hub.runtime_info:
                    hub.update_info('best_ckpt', self.best_ckpt_path)
            else:
                for key, old in list(self.best_ckpt_path_dict.items()):
                    new = self._own(old)
                    self.best_ckpt_path_dict[key] = new
                    self._report_reanchor(f'best checkpoint ({key})', old,
                                          new)
                    if f'best_ckpt_{key}' in hub.runtime_info:
                        hub.update_info(f'best_ckpt_{key}', new)
        if 'last_ckpt' in hub.runtime_info:
            hub.update_info('last_ckpt', self._own(hub.get_info('last_ckpt')))
        self._record_restart_info(runner)

    def _report_reanchor(self, what: str, old: Optional[str],
                         new: Optional[str]) -> None:
        if old and (new is None or osp.realpath(old) != osp.realpath(new)):
            tail = (f'using {new}' if new else
                    'it is not in this folder, so it is forgotten (and never '
                    'deleted)')
            print_log(
                f'The resumed {what} {old} belongs to another folder: '
                f'{tail}.',
                logger='current')

    def _record_restart_info(self, runner) -> None:
        hub = runner.message_hub
        hub.update_info(INFO_WORK_DIR, runner.work_dir)
        filename = getattr(runner.cfg, 'filename', None)
        if filename:
            hub.update_info(INFO_CONFIG, filename)
        try:
            lr = runner.cfg.optim_wrapper.optimizer.lr
        except (AttributeError, KeyError, TypeError):
            lr = None
        if isinstance(lr, (int, float)) and not isinstance(lr, bool):
            hub.update_info(INFO_LR, float(lr))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save, then write ``last_checkpoint`` relative to the work dir."""
        super()._save_checkpoint_with_step(runner, step, meta)
        if not is_main_process() or self.last_ckpt is None:
            return
        last = str(self.last_ckpt)
        if _inside(last, runner.work_dir):
            last = osp.relpath(last, runner.work_dir)
        path = osp.join(runner.work_dir, 'last_checkpoint')
        with open(path + '.partial', 'w') as f:  # atomic, like the ckpt
            f.write(last)
        os.replace(path + '.partial', path)

    # ------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Let the config's learning rate win over the checkpoint's."""
        if self.lr_from_config:
            apply_config_lr(runner, checkpoint)


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
