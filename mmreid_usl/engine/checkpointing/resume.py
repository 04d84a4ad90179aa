# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Resume resolution: the checkpoint to resume from, inside one work dir.

Auto-resume is decided in one place, :func:`resolve_resume`, called by
``tools/train.py`` (``--resume [PATH]``) and by
:class:`~.hook.WorkDirCheckpointHook` for configs that set ``resume=True``
themselves (the Runner API).

MMEngine's auto-resume reads ``work_dir/last_checkpoint``, which holds an
absolute path: a copied work dir resumes from the original's files and a
moved one cannot resume. Here the newest ``epoch_N.pth`` (or ``iter_N.pth``)
found in the work dir itself is used, after checking that it can be read.
"""
import logging
import os
import os.path as osp
import re
from typing import List, Optional, Tuple, Union

from mmengine.logging import print_log

from .weights_only import enable_weights_only_loading

#: Names of the periodic checkpoints ``CheckpointHook`` writes.
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


class ResumeError(RuntimeError):
    """Nothing (readable) to resume from; the message says what to do."""


def list_checkpoints(ckpt_dir: str) -> List[str]:
    """Periodic checkpoints of ``ckpt_dir``, newest first.

    ``epoch_N.pth`` files come first when both kinds exist (epoch-based
    runs); within a kind, higher ``N`` first. Best checkpoints
    (``best_*.pth``) and published files are not resume points.
    """
    if not osp.isdir(ckpt_dir):
        return []
    found: List[Tuple[int, int, str]] = []
    for name in os.listdir(ckpt_dir):
        match = CHECKPOINT_NAME.match(name)
        if match and osp.isfile(osp.join(ckpt_dir, name)):
            kind = 1 if match.group(1) == 'epoch' else 0
            found.append((kind, int(match.group(2)), name))
    found.sort(reverse=True)
    return [osp.join(ckpt_dir, name) for _, _, name in found]


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be resumed from, or None if it reads fine.

    The file is fully loaded (``weights_only`` where torch defaults to it,
    with the allow-list of :mod:`.weights_only`) and must hold ``meta``
    and ``state_dict``.
    """
    import torch
    enable_weights_only_loading()
    try:
        ckpt = torch.load(path, map_location='cpu')
    except Exception as err:  # noqa: BLE001 (any failure = unreadable)
        text = (str(err).strip().splitlines() or [''])[0]
        if len(text) > 120 and '. ' in text:  # the first sentence is enough
            text = text[:text.index('. ') + 1]
        return f'{type(err).__name__}: {text}'.strip()
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt \
            or 'meta' not in ckpt:
        return 'not an MMEngine training checkpoint (no meta / state_dict)'
    return None


def find_resume_checkpoint(ckpt_dir: str, fallback: bool = False) -> str:
    """The newest readable checkpoint of ``ckpt_dir`` to resume from.

    Args:
        ckpt_dir (str): The work dir (or the checkpoint hook's ``out_dir``).
        fallback (bool): When the newest checkpoint cannot be read, resume
            from the newest one that can (with a warning) instead of
            raising. Defaults to False.

    Returns:
        str: Path of the checkpoint, inside ``ckpt_dir``.

    Raises:
        ResumeError: No checkpoint in ``ckpt_dir``, or the newest one is
            unreadable and ``fallback`` is False (the message names the
            previous readable one, if any).
    """
    ckpts = list_checkpoints(ckpt_dir)
    if not ckpts:
        state = ('does not exist' if not osp.isdir(ckpt_dir) else
                 'holds no epoch_N.pth / iter_N.pth checkpoint')
        raise ResumeError(
            f'--resume: nothing to resume: the work dir {ckpt_dir!r} {state}. '
            'Check --work-dir (default: work_dirs/<config name>), pass a '
            'checkpoint (--resume PATH), or drop --resume to start a new '
            'run.')
    return _first_readable(ckpts, fallback)


def resolve_resume_path(path: str, fallback: bool = False) -> str:
    """Check an explicit ``--resume PATH``.

    Args:
        path (str): The checkpoint the user named.
        fallback (bool): If it cannot be read, use the newest readable
            checkpoint older than it in the same folder.

    Raises:
        ResumeError: ``path`` does not exist, or cannot be read and there is
            no fallback.
    """
    if not osp.isfile(path):
        raise ResumeError(f'--resume {path}: no such checkpoint file.')
    match = CHECKPOINT_NAME.match(osp.basename(path))
    older = []
    if match:
        older = [
            p for p in list_checkpoints(osp.dirname(path) or '.')
            if CHECKPOINT_NAME.match(osp.basename(p)).group(1) ==
            match.group(1) and int(
                CHECKPOINT_NAME.match(osp.basename(p)).group(2)) < int(
                    match.group(2))
        ]
    return _first_readable([path] + older, fallback)


def check_run_not_finished(path: str, train_cfg: Optional[dict]) -> None:
    """Refuse to resume a run that has already reached its end.

    Resuming ``epoch_12.pth`` of a 12-epoch config trains nothing and ends
    with rc 0 and the old final metrics, which looks like a successful
    restart (e.g. after following the NaN advice in the wrong work dir).

    Args:
        path (str): The checkpoint to resume from (readable).
        train_cfg (dict, optional): The config's ``train_cfg``
            (``max_epochs``, or ``max_iters`` with ``by_epoch=False``).

    Raises:
        ResumeError: The checkpoint's epoch (iteration) is at or past the
            end of training; the message says how to train longer or test.
    """
    train_cfg = dict(train_cfg or {})
    by_epoch = train_cfg.get('by_epoch', 'max_epochs' in train_cfg)
    key, meta_key = (('max_epochs', 'epoch') if by_epoch else
                     ('max_iters', 'iter'))
    end = train_cfg.get(key)
    if not isinstance(end, int):
        return
    import torch
    enable_weights_only_loading()
    try:
        meta = torch.load(path, map_location='cpu').get('meta', {})
    except Exception:  # noqa: BLE001 (readability is checked elsewhere)
        return
    done = meta.get(meta_key)
    if isinstance(done, int) and done >= end:
        raise ResumeError(
            f'--resume: {path} is at {meta_key} {done} and the config\'s '
            f'train_cfg.{key} is {end}: that run has finished, there is '
            'nothing left to train. To train it longer, add --cfg-options '
            f'train_cfg.{key}=N with N > {done}; to evaluate it, run '
            f'tools/test.py CONFIG {path}; to start a new run, use another '
            '--work-dir.')


def resolve_resume(resume: Union[bool, str],
                   ckpt_dir: str,
                   fallback: bool = False,
                   train_cfg: Optional[dict] = None) -> str:
    """The one place a resume point is decided.

    Args:
        resume (bool | str): ``True`` or ``'auto'``: the newest readable
            ``epoch_N.pth`` of ``ckpt_dir`` (logged as ``Auto-resume: ...``);
            a path: that checkpoint (:func:`resolve_resume_path`).
        ckpt_dir (str): The run's checkpoint folder
            (:func:`~.bookkeeping.checkpoint_dir`).
        fallback (bool): Take the previous readable checkpoint when the
            chosen one cannot be read. Defaults to False.
        train_cfg (dict, optional): The config's ``train_cfg``: a checkpoint
            at its end is refused (:func:`check_run_not_finished`).

    Returns:
        str: The checkpoint to resume from.

    Raises:
        ResumeError: Nothing (readable) to resume from, or the run has
            finished; the message says what to do.
    """
    if resume is True or resume == 'auto':
        path = find_resume_checkpoint(ckpt_dir, fallback=fallback)
        print_log(
            f'Auto-resume: the newest checkpoint of this work dir is {path}.',
            logger='current')
    else:
        path = resolve_resume_path(str(resume), fallback=fallback)
    check_run_not_finished(path, train_cfg)
    return path


def _first_readable(ckpts: List[str], fallback: bool) -> str:
    newest = ckpts[0]
    problem = checkpoint_problem(newest)
    if problem is None:
        return newest
    good = None
    for path in ckpts[1:]:
        if checkpoint_problem(path) is None:
            good = path
            break
    if good is None:
        raise ResumeError(
            f'--resume: the checkpoint {newest} cannot be read ({problem}) '
            'and no older readable checkpoint exists next to it.')
    if not fallback:
        raise ResumeError(
            f'--resume: the newest checkpoint {newest} cannot be read '
            f'({problem}). The previous readable one is {good}: resume from '
            f'it with `--resume {good}`, or add --resume-fallback to take it '
            'automatically.')
    print_log(
        f'The newest checkpoint {newest} cannot be read ({problem}); '
        f'resuming from the previous readable one, {good} '
        '(--resume-fallback).',
        logger='current',
        level=logging.WARNING)
    return good
