# Copyright (c) mmreid_usl contributors. All rights reserved.
"""A new run never writes into the checkpoints of an earlier one.

``tools/train.py CONFIG`` without ``--work-dir`` trains into
``work_dirs/<config name>``, so two runs of one config (a quick start, then a
distributed run or a restart) shared a folder: ``epoch_1/2.pth`` of the new
run next to ``epoch_10-12.pth`` of the old one, two ``best_*.pth``, a
replaced ``last_checkpoint``, and a later ``--resume`` that picked the old
``epoch_12.pth`` by its number. A new run (no ``--resume``) into a folder
that holds checkpoints is therefore refused, naming the ways out:
``--resume`` to continue that run, another ``--work-dir``, or
``--overwrite`` to replace its checkpoints.
"""
import logging
import os
import os.path as osp
import re
from typing import List

from mmengine.logging import print_log

#: Files of a run that a later run must not mix with its own: periodic and
#: best checkpoints, ``last_checkpoint`` and half-written ones.
RUN_FILE = re.compile(r'^((epoch|iter)_\d+\.pth|best_.*\.pth|last_checkpoint)'
                      r'(\.partial)?$')

#: How many files an error message names.
MAX_SHOWN = 6


class WorkDirNotEmptyError(RuntimeError):
    """A new run would mix its checkpoints with an earlier run's."""


def earlier_run_files(folders: List[str]) -> List[str]:
    """Checkpoint files of an earlier run in ``folders`` (sorted paths).

    Args:
        folders (list[str]): The work dir and, when the checkpoint hook has
            an ``out_dir``, the checkpoint folder.
    """
    found = []
    for folder in dict.fromkeys(folders):
        if not osp.isdir(folder):
            continue
        found += [
            osp.join(folder, name) for name in sorted(os.listdir(folder))
            if RUN_FILE.match(name) and osp.isfile(osp.join(folder, name))
        ]
    return found


def check_new_run(folders: List[str], overwrite: bool = False) -> List[str]:
    """Refuse (or, with ``overwrite``, clear) a work dir of an earlier run.

    Call it for a run that starts from scratch (no resume), while holding
    the work dir (:func:`~.work_dir_lock.lock_work_dir`).

    Args:
        folders (list[str]): The work dir and the checkpoint folder.
        overwrite (bool): Delete the earlier run's checkpoint files (logged)
            instead of raising. Its timestamped log folders are kept.

    Returns:
        list[str]: The deleted files (empty unless ``overwrite``).

    Raises:
        WorkDirNotEmptyError: The folders hold checkpoints and ``overwrite``
            is False; the message lists them and the three ways out.
    """
    files = earlier_run_files(folders)
    if not files:
        return []
    if not overwrite:
        shown = ', '.join(osp.basename(f) for f in files[:MAX_SHOWN])
        if len(files) > MAX_SHOWN:
            shown += f', ... ({len(files) - MAX_SHOWN} more)'
        raise WorkDirNotEmptyError(
            f'the work dir {folders[0]} holds the checkpoints of an earlier '
            f'run ({shown}); a new run would mix its checkpoints with them '
            '(and a later --resume could pick the old ones). Either '
            'continue that run with --resume, or start the new run in '
            'another folder with --work-dir DIR, or replace the earlier '
            "run's checkpoints with --overwrite (they are deleted).")
    for path in files:
        os.remove(path)
    print_log(
        f'--overwrite: deleted the checkpoints of the earlier run in '
        f'{folders[0]}: {", ".join(osp.basename(f) for f in files)}.',
        logger='current',
        level=logging.WARNING)
    return files
