# Copyright (c) mmreid_usl contributors. All rights reserved.
"""MMEngine's CheckpointHook confined to the run's own work dir."""
import contextlib
import logging
import math
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmreid_usl.engine.runner.reid_runner import (
    PARTIAL_SUFFIX, without_file_client_notices)
from mmreid_usl.engine.work_dir_lock import (holds_work_dir, lock_work_dir,
                                             release_work_dir)
from mmreid_usl.registry import HOOKS
from mmreid_usl.utils.nan_advice import INFO_CONFIG, INFO_LR, INFO_WORK_DIR
from mmreid_usl.utils.resume import (check_run_not_finished,
                                     find_resume_checkpoint)


def _inside(path: str, folder: str) -> bool:
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _ConfinedBackend:
    """A file backend whose ``remove`` / ``rmtree`` only act inside a folder.

    Deletions can also be deferred (:meth:`deferred_removals`): MMEngine's
    ``CheckpointHook`` deletes the previous best checkpoint and the oldest
    kept one *before* it writes the new file, so a run killed during the
    write lost them with nothing complete in their place. Inside the block
    the deletions are only recorded, and they are carried out after the
    block has completed (that is, after the new file is complete).

    Everything else is delegated to the wrapped backend.
    """

    def __init__(self, backend, folder: str) -> None:
        self._backend = backend
        self._folder = folder
        #: ``(method name, path)`` of the deletions deferred so far, or
        #: None when deletions are carried out at once.
        self._pending: Optional[List[Tuple[str, str]]] = None

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
            self._delete('remove', path)

    def rmtree(self, path: str) -> None:
        if self._allowed(path):
            self._delete('rmtree', path)

    def _delete(self, method: str, path: str) -> None:
        if self._pending is not None:
            self._pending.append((method, path))
        else:
            getattr(self._backend, method)(path)

    @contextlib.contextmanager
    def deferred_removals(self, keep=lambda: ()) -> Iterator[None]:
        """Carry out the deletions requested in the block after it.

        Re-entrant: only the outermost block deletes. When the block raises
        (the run is being killed or the write failed), nothing is deleted.

        Args:
            keep (Callable[[], Iterable[str]]): Called after the block; the
                paths it returns are not deleted (e.g. a new best checkpoint
                that has the name of the one it replaces).
        """
        if self._pending is not None:  # an outer block deletes
            yield
            return
        self._pending = []
        try:
            yield
            pending = self._pending
        finally:
            self._pending = None
        kept = {osp.realpath(str(p)) for p in keep() if p}
        for method, path in pending:
            if osp.realpath(path) in kept or not osp.exists(path):
                continue
            getattr(self._backend, method)(path)


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
    - files are only ever deleted inside this folder, and a replaced best
      checkpoint or the oldest kept one only once its successor is
      complete (MMEngine deletes first), so a run killed while saving keeps
      every earlier checkpoint; the ``*.partial`` files such a run leaves
      are removed, with a warning, when the next run starts;
    - the work dir is locked for the run
      (:mod:`mmreid_usl.engine.work_dir_lock`), unless ``tools/train.py``
      already holds it.

    It also lets the config's learning rate win over the checkpoint's when
    they differ on resume (``lr_from_config``; not for a plain
    ``load_from``, which restores no optimizer state): the optimizer's and
    the schedulers' learning-rate state is rescaled by ``config lr /
    checkpoint lr`` with a warning, so restarting after a NaN with a lower
    ``lr`` works. Finally it records the config file, work dir and base
    learning rate for the NaN advice
    (:func:`mmreid_usl.utils.nan_loss_message`).

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
        """Hold the work dir; pick the checkpoint of an auto-resume in it.

        The work dir is locked for this run (one run per work dir, see
        :mod:`mmreid_usl.engine.work_dir_lock`); ``tools/train.py`` takes
        the lock before the Runner is built, and a run through the Runner
        API takes it here.

        Raises:
            WorkDirBusyError: Another running training holds the work dir.
        """
        self._locked_here = False
        if is_main_process() and not holds_work_dir(runner.work_dir):
            lock_work_dir(runner.work_dir)
            self._locked_here = True
        if _is_resuming(runner) and _load_from(runner) is None:
            path = find_resume_checkpoint(
                self._ckpt_dir(runner), fallback=self.resume_fallback)
            print_log(
                f'Auto-resume: the newest checkpoint of this work dir is '
                f'{path}.',
                logger='current')
            check_run_not_finished(path, runner.cfg.get('train_cfg'))
            _set_load_from(runner, path)

    def after_run(self, runner) -> None:
        """Release the work dir if this hook locked it."""
        if getattr(self, '_locked_here', False):
            release_work_dir(runner.work_dir)
            self._locked_here = False

    def _own(self, path: Optional[str]) -> Optional[str]:
        """``path``'s file name in this run's folder, if it exists there."""
        if not path:
            return None
        own = osp.join(self.out_dir, osp.basename(str(path)))
        return own if osp.exists(own) else None

    def before_train(self, runner) -> None:
        """Confine deletions and re-anchor resumed paths to this folder.

        Also removes the ``*.partial`` files a run killed while saving left
        behind (see :func:`remove_stale_partials`).
        """
        with without_file_client_notices():
            super().before_train(runner)
        self.file_backend = _ConfinedBackend(self.file_backend, self.out_dir)
        if is_main_process():
            for folder in dict.fromkeys([self.out_dir, runner.work_dir]):
                remove_stale_partials(folder)
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
        if not old or (new is not None
                       and osp.realpath(old) == osp.realpath(new)):
            return
        if new is not None:
            msg = f'The resumed {what} {old} belongs to another folder: ' \
                f'using {new}.'
        elif osp.realpath(osp.dirname(str(old))) == \
                osp.realpath(self.out_dir):
            msg = (f'The resumed {what} {old} no longer exists (deleted by '
                   'hand, or its write was interrupted): it is forgotten, and '
                   'the next best checkpoint is written afresh.')
        else:
            msg = (f'The resumed {what} {old} belongs to another folder and '
                   'is not in this one: it is forgotten (and never deleted).')
        print_log(msg, logger='current', level=logging.WARNING)

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

    def _current_checkpoints(self) -> List[str]:
        """The best and last checkpoints this run refers to now."""
        paths = [getattr(self, 'best_ckpt_path', None), self.last_ckpt]
        paths += list(getattr(self, 'best_ckpt_path_dict', {}).values())
        return [str(p) for p in paths if p]

    @contextlib.contextmanager
    def _deletions_after_writes(self) -> Iterator[None]:
        """Delete replaced checkpoints only once the new ones are complete.

        MMEngine 0.10's ``CheckpointHook`` removes the previous best
        checkpoint (``_save_best_checkpoint``) and the oldest kept one
        (``_save_checkpoint_with_step``) before writing the new one; a run
        killed during the write kept neither. The deletions are deferred to
        the end of the save (and skipped if the save fails).
        """
        backend = getattr(self, 'file_backend', None)
        if not isinstance(backend, _ConfinedBackend):
            yield
            return
        with backend.deferred_removals(keep=self._current_checkpoints):
            yield

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's, deleting the previous best only after the new one."""
        with self._deletions_after_writes():
            super()._save_best_checkpoint(runner, metrics)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save, then write ``last_checkpoint`` relative to the work dir.

        The oldest kept checkpoint (``max_keep_ckpts``) is deleted after the
        new one is complete.
        """
        with self._deletions_after_writes():
            super()._save_checkpoint_with_step(runner, step, meta)
            if not is_main_process() or self.last_ckpt is None:
                return
            last = str(self.last_ckpt)
            if _inside(last, runner.work_dir):
                last = osp.relpath(last, runner.work_dir)
            path = osp.join(runner.work_dir, 'last_checkpoint')
            with open(path + PARTIAL_SUFFIX, 'w') as f:  # atomic, like ckpts
                f.write(last)
            os.replace(path + PARTIAL_SUFFIX, path)

    # ------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, let the config's learning rate win over the
        checkpoint's.

        ``load_from`` without resume restores no optimizer or scheduler
        state (training runs at the config's learning rate anyway), so
        nothing is rescaled or logged then.
        """
        if self.lr_from_config and _is_resuming(runner):
            apply_config_lr(runner, checkpoint)


# ----------------------------------------------------------------------
# MMEngine 0.10's Runner keeps ``resume`` and ``load_from`` in the private
# attributes ``_resume`` / ``_load_from`` and has no public accessor; every
# use here goes through these three functions.
def _is_resuming(runner) -> bool:
    """Whether the runner resumes (``resume=True``), not just loads."""
    return bool(getattr(runner, '_resume', False))


def _load_from(runner) -> Optional[str]:
    """The checkpoint the runner will load or resume from, if any."""
    return getattr(runner, '_load_from', None)


def _set_load_from(runner, path: str) -> None:
    """Make the runner resume from ``path`` (read in ``load_or_resume``)."""
    runner._load_from = path


def remove_stale_partials(folder: str) -> List[str]:
    """Remove the checkpoint files a killed run left half-written.

    Checkpoints (:meth:`ReIDRunner.save_checkpoint`) and ``last_checkpoint``
    are written to ``NAME.partial`` and renamed when complete, so a
    ``*.pth.partial`` or ``last_checkpoint.partial`` is what a run killed
    while saving left behind: never a resume point, and never complete.
    Only call this while holding the work dir (one run per work dir, see
    :mod:`mmreid_usl.engine.work_dir_lock`), since a running save also has
    such a file.

    Args:
        folder (str): A checkpoint folder; nothing happens if it is absent.

    Returns:
        list[str]: The removed files.
    """
    if not osp.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(PARTIAL_SUFFIX):
            continue
        stem = name[:-len(PARTIAL_SUFFIX)]
        path = osp.join(folder, name)
        if not (stem.endswith('.pth') or stem == 'last_checkpoint') or \
                not osp.isfile(path):
            continue
        os.remove(path)
        removed.append(path)
        print_log(
            f'Removed {path}: an incomplete file left by a run killed while '
            f'it was saving {stem} (the complete checkpoints are untouched).',
            logger='current',
            level=logging.WARNING)
    return removed


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
