# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Atomic saves: a checkpoint is complete under its name, or absent.

Checkpoints (:meth:`~mmreid_usl.engine.runner.ReIDRunner.save_checkpoint`)
and ``last_checkpoint`` are written to ``NAME.partial`` and renamed with
:func:`os.replace` (atomic on POSIX and Windows within one folder) once
complete; a ``*.partial`` file is what a run killed while saving leaves
behind, never a resume point, and is removed when the next run starts
(:func:`remove_stale_partials`). Written by hand: neither MMEngine (0.10.x)
nor its file backends offer an atomic put.
"""
import contextlib
import logging
import os
import os.path as osp
from typing import Callable, Iterator, List

from mmengine.logging import MMLogger, print_log

#: Suffix of the file a local checkpoint is written to before it is renamed
#: to its final name.
PARTIAL_SUFFIX = '.partial'

#: Starts of the deprecation notices MMEngine 0.10 logs on every run: its
#: ``CheckpointHook.before_train`` and ``save_checkpoint`` build a
#: ``FileClient`` for backward compatibility, unused without
#: ``file_client_args``.
_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated',
                        '"HardDiskBackend" is the alias of "LocalBackend"')


class _DropFileClientNotices(logging.Filter):
    """Drops the records of :data:`_FILE_CLIENT_NOTICES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_FILE_CLIENT_NOTICES)


@contextlib.contextmanager
def without_file_client_notices() -> Iterator[None]:
    """Hide the notices of :data:`_FILE_CLIENT_NOTICES` in the block."""
    logger = MMLogger.get_current_instance()
    drop = _DropFileClientNotices()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def save_atomically(save: Callable[[str], None], out_dir: str,
                    filename: str) -> None:
    """Write ``out_dir/filename`` through ``filename + '.partial'``.

    Args:
        save (Callable[[str], None]): Writes the file; called with the
            partial file name (inside ``out_dir``).
        out_dir (str): A local folder.
        filename (str): The final file name.

    A failed write removes the partial file and re-raises.
    """
    partial = filename + PARTIAL_SUFFIX
    try:
        with without_file_client_notices():
            save(partial)
    except BaseException:
        if osp.exists(osp.join(out_dir, partial)):
            os.remove(osp.join(out_dir, partial))
        raise
    os.replace(osp.join(out_dir, partial), osp.join(out_dir, filename))


def write_text_atomically(path: str, text: str) -> None:
    """Replace the text file ``path`` atomically (via ``path.partial``)."""
    with open(path + PARTIAL_SUFFIX, 'w') as f:
        f.write(text)
    os.replace(path + PARTIAL_SUFFIX, path)


def remove_stale_partials(folder: str) -> List[str]:
    """Remove the checkpoint files a killed run left half-written.

    A ``*.pth.partial`` or ``last_checkpoint.partial`` is what a run killed
    while saving left behind: never a resume point, and never complete.
    Only call this while holding the work dir (one run per work dir, see
    :mod:`.work_dir_lock`), since a running save also has such a file.

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
