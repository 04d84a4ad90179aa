# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The stage-1 -> adaptation hand-off: ``stage1_checkpoint``.

A two-stage method (GDS / Theory: ``source-pretrain_*`` on the labelled
source domain, then the adaptation on the target) starts its second stage
from the student encoder of the first. The path comes from ONE top-level
option, ``stage1_checkpoint`` (``--cfg-options stage1_checkpoint=CKPT``),
and reaches the model as the encoder's initialisation, mmpretrain's
benchmark pattern::

    model.encoder.init_cfg = dict(type='Pretrained', checkpoint=CKPT,
                                  prefix='encoder.')

so only the encoder is loaded (the stage-1 classifier is not even read) and
``load_from`` stays OpenMMLab's resume / fine-tune setting. Before training
the checkpoint must fit the encoder (:func:`check_start_checkpoint`, the
check of ``tools/test.py``; ``--partial-load`` for a deliberate partial
load), and the ImageNet ``Pretrained`` weights it replaces are not loaded
(no download).

A config that needs a stage-1 checkpoint declares ``stage1_checkpoint =
None`` (the adaptation model bases do) and names its stage-1 config in
``stage1_config``; a new run of it without one stops with the stage-1
command. ``stage1_checkpoint=False`` starts it without one, on purpose
(smoke tests: the encoder keeps its own initialisation). ``load_from=CKPT`` remains accepted for the same purpose (the
command of the earlier releases): it loads the whole model non-strictly
(the encoder checked as above), which for a stage-1 checkpoint also brings
what the two stages share outside the encoder (a ``GDSLoss``'s statistics
when stage 1 trained with one).
"""
import os
import os.path as osp
from typing import Optional

from mmengine.logging import print_log

from .load_from import check_load_from, skip_replaced_pretrained_inits

#: The option: the path or URL of the stage-1 checkpoint.
STAGE1_KEY = 'stage1_checkpoint'
#: The stage-1 config of a two-stage config (for the messages only).
STAGE1_CONFIG_KEY = 'stage1_config'
#: The state-dict prefix of the student encoder in every algorithm.
ENCODER_PREFIX = 'encoder.'


class Stage1CheckpointError(ValueError):
    """The stage-1 checkpoint is missing, absent, or set twice."""


def _is_url(path: str) -> bool:
    return '://' in path


def stage1_command(cfg) -> str:
    """How to make and pass the stage-1 checkpoint of ``cfg`` (two lines)."""
    stage1 = cfg.get(STAGE1_CONFIG_KEY)
    if not stage1:
        return (f'train the stage this config adapts, then pass its '
                f'checkpoint with --cfg-options {STAGE1_KEY}=CKPT')
    stem = osp.splitext(osp.basename(stage1))[0]
    epoch = 'N'
    repo = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    for root in ('', repo):
        if osp.isfile(osp.join(root, stage1)):
            try:
                from mmengine.config import Config
                epoch = str(
                    Config.fromfile(osp.join(root,
                                             stage1)).train_cfg.max_epochs)
            except Exception:  # the message must not fail
                pass
            break
    return (f'train stage 1 with `python tools/train.py {stage1}`, then pass '
            f'its checkpoint with `--cfg-options {STAGE1_KEY}=work_dirs/'
            f'{stem}/epoch_{epoch}.pth` (configs/gds/README.md)')


def apply_stage1_checkpoint(cfg, config_path: Optional[str] = None
                            ) -> Optional[str]:
    """Set the encoder's ``init_cfg`` from ``stage1_checkpoint``.

    Called on the merged config (after ``--cfg-options`` and ``--resume``),
    before the model is built.

    Args:
        cfg (Config): The config; ``cfg.model.encoder.init_cfg`` is set.
        config_path (str, optional): The config file (for messages).

    Returns:
        str | None: The stage-1 checkpoint, None when there is none to
        load (not asked for, ``load_from`` given, or a resume, which
        restores every weight itself).

    Raises:
        Stage1CheckpointError: A config that declares ``stage1_checkpoint``
            gets neither it nor ``load_from`` in a new run; the file does
            not exist; both ``stage1_checkpoint`` and ``load_from`` are set;
            the model has no ``encoder`` config.
    """
    name = config_path or 'this config'
    checkpoint = cfg.get(STAGE1_KEY)
    if cfg.get('resume', False):
        if checkpoint:
            print_log(
                f'{STAGE1_KEY}={checkpoint} is not loaded: the run resumes '
                'from its own checkpoint, which holds every weight.',
                logger='current')
        return None
    if checkpoint is False:  # deliberately none
        return None
    if not checkpoint:
        if STAGE1_KEY in cfg and not cfg.get('load_from'):
            raise Stage1CheckpointError(
                f'{name} adapts a stage-1 checkpoint and none is given '
                f'({STAGE1_KEY} is None): {stage1_command(cfg)}; '
                f'{STAGE1_KEY}=False starts without one, on purpose.')
        return None
    checkpoint = os.fspath(checkpoint)
    if cfg.get('load_from'):
        raise Stage1CheckpointError(
            f'both {STAGE1_KEY}={checkpoint} and load_from={cfg.load_from} '
            f'are set: give the stage-1 checkpoint as {STAGE1_KEY} only '
            '(load_from loads a whole model to fine-tune; --resume continues '
            'a run).')
    if not _is_url(checkpoint) and not osp.isfile(checkpoint):
        raise Stage1CheckpointError(
            f'{STAGE1_KEY}={checkpoint!r}: no such checkpoint file; '
            f'{stage1_command(cfg)}.')
    encoder = (cfg.get('model') or {}).get('encoder')
    if not isinstance(encoder, dict):
        raise Stage1CheckpointError(
            f'{STAGE1_KEY} initialises model.encoder, but the model of '
            f'{name} has no encoder config.')
    if encoder.get('init_cfg'):
        print_log(
            f'model.encoder.init_cfg={encoder["init_cfg"]} is replaced by '
            f'the stage-1 checkpoint ({STAGE1_KEY}).',
            logger='current')
    encoder['init_cfg'] = dict(
        type='Pretrained', checkpoint=checkpoint, prefix=ENCODER_PREFIX)
    return checkpoint


def check_start_checkpoint(model, cfg, allow_partial: bool = False) -> bool:
    """Before training: the checkpoint a new run starts from must fit.

    The ``stage1_checkpoint`` (see :func:`apply_stage1_checkpoint`) or
    ``load_from`` of a new run (nothing on resume) is compared with the
    student encoder (:func:`check_load_from`); when it fits, the
    ``Pretrained`` initialisations it replaces (the ImageNet backbone) are
    skipped.

    Args:
        model (nn.Module): The built model.
        cfg (Config): The merged config.
        allow_partial (bool): ``--partial-load``.

    Returns:
        bool: Whether a checkpoint was checked and fits.

    Raises:
        CheckpointMismatchError: It does not fit (without
            ``allow_partial``); the message names the keys.
        FileNotFoundError: ``load_from`` does not exist.
    """
    if cfg.get('resume', False):
        return False
    option, checkpoint = STAGE1_KEY, cfg.get(STAGE1_KEY)
    if not checkpoint:
        option, checkpoint = 'load_from', cfg.get('load_from')
    if not checkpoint:
        return False
    checkpoint = os.fspath(checkpoint)
    if not check_load_from(model, checkpoint, allow_partial, option=option):
        return False
    skip_replaced_pretrained_inits(model, checkpoint, option=option)
    return True
