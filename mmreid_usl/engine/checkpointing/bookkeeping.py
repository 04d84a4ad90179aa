# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Work-dir-local bookkeeping: every path refers to this run's folder.

MMEngine (0.10.x) stores absolute paths (``last_checkpoint``, the best
checkpoint in the message hub) and acts on them after a resume, so a copied
work dir resumed from the original's files and deleted the original's best
checkpoint. These helpers keep the bookkeeping relative to the checkpoint
folder of the current run (used by :class:`~.hook.WorkDirCheckpointHook`
and ``tools/train.py``).
"""
import contextlib
import logging
import os
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.logging import print_log

from .atomic import write_text_atomically


def checkpoint_dir(work_dir: str, out_dir: Optional[str] = None) -> str:
    """Where the checkpoint hook writes: ``work_dir``, or
    ``out_dir/<work dir name>`` when the hook has another ``out_dir`` (as
    MMEngine's ``CheckpointHook.before_train`` computes it)."""
    if out_dir is None or out_dir == work_dir:
        return work_dir
    return osp.join(out_dir, osp.basename(osp.abspath(work_dir)))


def is_inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (real paths)."""
    path, folder = osp.realpath(path), osp.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def own_path(folder: str, path: Optional[str]) -> Optional[str]:
    """``path``'s file name in ``folder``, if it exists there."""
    if not path:
        return None
    own = osp.join(folder, osp.basename(str(path)))
    return own if osp.exists(own) else None


def report_reanchor(what: str, old: Optional[str], new: Optional[str],
                    folder: str) -> None:
    """Warn that a resumed path was replaced by ``new`` or forgotten."""
    if not old or (new is not None
                   and osp.realpath(old) == osp.realpath(new)):
        return
    if new is not None:
        msg = f'The resumed {what} {old} belongs to another folder: ' \
            f'using {new}.'
    elif osp.realpath(osp.dirname(str(old))) == osp.realpath(folder):
        msg = (f'The resumed {what} {old} no longer exists (deleted by '
               'hand, or its write was interrupted): it is forgotten, and '
               'the next best checkpoint is written afresh.')
    else:
        msg = (f'The resumed {what} {old} belongs to another folder and '
               'is not in this one: it is forgotten (and never deleted).')
    print_log(msg, logger='current', level=logging.WARNING)


def write_last_checkpoint(work_dir: str, last: str) -> None:
    """Write ``work_dir/last_checkpoint`` (atomically), holding ``last``
    relative to the work dir when it lies inside it."""
    if is_inside(last, work_dir):
        last = osp.relpath(last, work_dir)
    write_text_atomically(osp.join(work_dir, 'last_checkpoint'), last)


class ConfinedBackend:
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
        if is_inside(path, self._folder):
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
