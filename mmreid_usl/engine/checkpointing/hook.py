# Copyright (c) mmreid_usl contributors. All rights reserved.
"""MMEngine's CheckpointHook confined to the run's own work dir."""
import contextlib
from typing import Iterator, List

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmreid_usl.registry import HOOKS
from .atomic import remove_stale_partials, without_file_client_notices
from .bookkeeping import (ConfinedBackend, checkpoint_dir, own_path,
                          report_reanchor, write_last_checkpoint)
from .config_lr import apply_config_lr
from .mmengine_private import is_resuming, load_from_of, set_load_from
from .resume import resolve_resume
from .work_dir_lock import holds_work_dir, lock_work_dir, release_work_dir


@HOOKS.register_module()
class WorkDirCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` that never leaves its work dir.

    MMEngine stores absolute paths (``last_checkpoint``, the best
    checkpoint in the message hub) and acts on them after a resume, so a
    copied work dir resumed from the original's files and deleted the
    original's best checkpoint. This hook keeps all bookkeeping relative to
    the checkpoint folder of the *current* run (``work_dir``, or
    ``out_dir/<work_dir name>`` as in MMEngine):

    - **auto-resume** (``resume=True`` without ``load_from``, i.e. a config
      that sets ``resume=True`` itself): the newest readable ``epoch_N.pth``
      of the folder itself (:func:`~.resume.resolve_resume`, which
      ``tools/train.py --resume`` uses too); an empty folder is an error
      (:class:`~.resume.ResumeError`), an unreadable newest checkpoint is an
      error naming the previous readable one, or — with
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
    - the work dir is locked for the run (:mod:`.work_dir_lock`), unless
      ``tools/train.py`` already holds it.

    It also lets the config's learning rate win over the checkpoint's when
    they differ on resume (``lr_from_config``; not for a plain
    ``load_from``, which restores no optimizer state): the optimizer's and
    the schedulers' learning-rate state is rescaled by ``config lr /
    checkpoint lr`` with a warning (:func:`~.config_lr.apply_config_lr`), so
    restarting after a NaN with a lower ``lr`` works.

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

    def _ckpt_dir(self, runner) -> str:
        """The folder checkpoints go to, as ``CheckpointHook`` computes it."""
        if getattr(self, 'file_backend', None) is not None and \
                self.out_dir is not None:
            return self.out_dir  # already joined in before_train
        return checkpoint_dir(runner.work_dir, self.out_dir)

    def before_run(self, runner) -> None:
        """Hold the work dir; pick the checkpoint of an auto-resume in it.

        The work dir is locked for this run (one run per work dir, see
        :mod:`.work_dir_lock`); ``tools/train.py`` takes the lock before the
        Runner is built, and a run through the Runner API takes it here.

        Raises:
            WorkDirBusyError: Another running training holds the work dir.
            ResumeError: ``resume=True`` with nothing (readable) to resume.
        """
        self._locked_here = False
        if is_main_process() and not holds_work_dir(runner.work_dir):
            lock_work_dir(runner.work_dir)
            self._locked_here = True
        if is_resuming(runner) and load_from_of(runner) is None:
            set_load_from(
                runner,
                resolve_resume(
                    True,
                    self._ckpt_dir(runner),
                    fallback=self.resume_fallback,
                    train_cfg=runner.cfg.get('train_cfg')))

    def after_run(self, runner) -> None:
        """Release the work dir if this hook locked it."""
        if getattr(self, '_locked_here', False):
            release_work_dir(runner.work_dir)
            self._locked_here = False

    def before_train(self, runner) -> None:
        """Confine deletions and re-anchor resumed paths to this folder.

        Also removes the ``*.partial`` files a run killed while saving left
        behind (see :func:`~.atomic.remove_stale_partials`).
        """
        with without_file_client_notices():
            super().before_train(runner)
        self.file_backend = ConfinedBackend(self.file_backend, self.out_dir)
        if is_main_process():
            for folder in dict.fromkeys([self.out_dir, runner.work_dir]):
                remove_stale_partials(folder)
        hub = runner.message_hub
        if self.save_best is not None:
            if len(self.key_indicators) == 1:
                old = self.best_ckpt_path
                self.best_ckpt_path = own_path(self.out_dir, old)
                report_reanchor('best checkpoint', old, self.best_ckpt_path,
                                self.out_dir)
                if 'best_ckpt' in hub.runtime_info:
                    hub.update_info('best_ckpt', self.best_ckpt_path)
            else:
                for key, old in list(self.best_ckpt_path_dict.items()):
                    new = own_path(self.out_dir, old)
                    self.best_ckpt_path_dict[key] = new
                    report_reanchor(f'best checkpoint ({key})', old, new,
                                    self.out_dir)
                    if f'best_ckpt_{key}' in hub.runtime_info:
                        hub.update_info(f'best_ckpt_{key}', new)
        if 'last_ckpt' in hub.runtime_info:
            hub.update_info('last_ckpt',
                            own_path(self.out_dir, hub.get_info('last_ckpt')))

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
        if not isinstance(backend, ConfinedBackend):
            yield
            return
        with backend.deferred_removals(keep=self._current_checkpoints):
            yield

    # MMEngine 0.10.x private method of CheckpointHook: no public hook point
    # around the deletion of the previous best checkpoint.
    def _save_best_checkpoint(self, runner, metrics) -> None:
        """MMEngine's, deleting the previous best only after the new one."""
        with self._deletions_after_writes():
            super()._save_best_checkpoint(runner, metrics)

    # MMEngine 0.10.x private method of CheckpointHook: it writes
    # ``last_checkpoint`` with an absolute path and prunes max_keep_ckpts
    # before the new file exists; no public hook point.
    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save, then write ``last_checkpoint`` relative to the work dir.

        The oldest kept checkpoint (``max_keep_ckpts``) is deleted after the
        new one is complete.
        """
        with self._deletions_after_writes():
            super()._save_checkpoint_with_step(runner, step, meta)
            if not is_main_process() or self.last_ckpt is None:
                return
            write_last_checkpoint(runner.work_dir, str(self.last_ckpt))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, let the config's learning rate win over the
        checkpoint's.

        ``load_from`` without resume restores no optimizer or scheduler
        state (training runs at the config's learning rate anyway), so
        nothing is rescaled or logged then.
        """
        if self.lr_from_config and is_resuming(runner):
            apply_config_lr(runner, checkpoint)
