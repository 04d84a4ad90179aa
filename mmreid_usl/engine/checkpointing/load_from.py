# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Starting a training from ``load_from``: the checkpoint must fit.

``load_from`` hands a trained network to the next stage (GDS / Theory
stage 2 starts from the stage-1 ``source-pretrain_*`` checkpoint). MMEngine
loads it non-strictly, so a checkpoint of another backbone (a ResNet-18 one
for a MobileNetV2 config) only produced a warning, and training adapted the
ImageNet initialisation instead, with rc 0. Before training,
:func:`check_load_from` compares the checkpoint with the student encoder the
same way ``tools/test.py`` does (:func:`check_checkpoint_fits`): missing,
unexpected or mis-shaped encoder keys are an error, unless a partial load is
asked for explicitly (``tools/train.py --partial-load``).

When the checkpoint fits, it replaces every encoder weight, so an ImageNet
``Pretrained`` initialisation of the encoder is skipped
(:func:`skip_replaced_pretrained_inits`): a stage-2 run needs neither the
download nor the network to start.
"""
import logging
import os.path as osp
from typing import List, Sequence, Tuple

import torch.nn as nn
from mmengine.logging import print_log

from mmreid_usl.utils.misc import get_ori_model
from .fits import (CheckpointMismatchError, check_checkpoint_fits,
                   feature_prefixes)

#: The encoder a training starts from (the student).
TRAINED_ENCODERS = ('student', )


def check_load_from(model: nn.Module,
                    checkpoint: str,
                    allow_partial: bool = False,
                    option: str = 'load_from') -> bool:
    """Check that ``load_from`` holds every weight of the student encoder.

    Args:
        model (nn.Module): The built model (wrappers are unwrapped).
        checkpoint (str): The ``load_from`` path or URL.
        allow_partial (bool): Only warn (naming the keys) when it does not
            fit, for a deliberate partial load. Defaults to False.
        option (str): The setting that gave ``checkpoint`` (messages):
            ``'load_from'`` or ``'stage1_checkpoint'``
            (:mod:`.stage1`).

    Returns:
        bool: Whether the checkpoint fits (False only with
        ``allow_partial``).

    Raises:
        CheckpointMismatchError: Missing, unexpected or mis-shaped encoder
            keys (without ``allow_partial``); the message names them.
        FileNotFoundError: ``checkpoint`` is a local path that does not
            exist.
    """
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'{option}={checkpoint!r}: no such checkpoint file. Train the '
            f'stage it comes from first, or set {option} to the right path '
            f'(--cfg-options {option}=PATH).')
    hint = (f'Check {option} (a checkpoint of the same encoder, e.g. the '
            "stage-1 run of this config's README), or add --partial-load to "
            'load only the weights that fit, on purpose.')
    try:
        check_checkpoint_fits(
            model, checkpoint, TRAINED_ENCODERS, name=checkpoint, hint=hint)
    except CheckpointMismatchError as err:
        if not allow_partial:
            raise
        print_log(
            f'--partial-load: {err}'.replace(hint, '').rstrip() +
            '\n  The weights that fit are loaded; the others keep their '
            'initialisation.',
            logger='current',
            level=logging.WARNING)
        return False
    return True


def skip_replaced_pretrained_inits(model: nn.Module,
                                   checkpoint: str,
                                   option: str = 'load_from'
                                   ) -> List[Tuple[str, str]]:
    """Drop the ``Pretrained`` inits that ``load_from`` overwrites anyway.

    Only for a checkpoint that :func:`check_load_from` found to fit: every
    module of the student encoder with a ``Pretrained`` ``init_cfg`` (the
    ImageNet backbone of a stage-2 config) gets ``init_cfg=None``, so
    MMEngine's ``init_weights`` neither downloads nor reads those weights.
    The ``init_cfg`` that loads ``checkpoint`` itself (the encoder's, set
    from ``stage1_checkpoint``) is kept.

    Args:
        model (nn.Module): The built model (wrappers are unwrapped).
        checkpoint (str): The ``load_from`` checkpoint (for the log line).
        option (str): The setting that gave ``checkpoint`` (log line).

    Returns:
        list[tuple[str, str]]: ``(module name, skipped checkpoint)`` pairs.
    """
    ori = get_ori_model(model)
    prefixes: Sequence[str] = feature_prefixes(ori, TRAINED_ENCODERS)
    skipped = []
    for name, module in ori.named_modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if not (name + '.').startswith(tuple(prefixes)) or \
                not isinstance(init_cfg, dict) or \
                init_cfg.get('type') != 'Pretrained' or \
                init_cfg.get('checkpoint') == checkpoint:
            continue
        skipped.append((name, str(init_cfg.get('checkpoint'))))
        module.init_cfg = None
    for name, weights in skipped:
        print_log(
            f'{name}: not loading its Pretrained weights {weights}: '
            f'{option}={checkpoint} replaces every weight of the encoder.',
            logger='current')
    return skipped
