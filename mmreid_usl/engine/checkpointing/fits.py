# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Check that a checkpoint holds every weight of the encoder that is tested.

MMEngine loads checkpoints non-strictly: a checkpoint of another algorithm or
architecture loads "successfully" with a warning, and the test then scores a
randomly initialised encoder. Testing and visualisation only need the
encoder that produces the features, so that part is compared strictly and
everything else is listed as ignored.
"""
import logging
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseAveragedModel

from mmreid_usl.utils.deprecation import renamed_kwargs
from mmreid_usl.utils.misc import get_ori_model
from .mmengine_private import load_state_into_model
from .weights_only import load_weights_only

#: How many keys of each kind an error message names.
MAX_KEYS_SHOWN = 12


class CheckpointMismatchError(ValueError):
    """The checkpoint does not fit the encoder that produces the features."""


@renamed_kwargs(sources='encoders')
def feature_prefixes(model: nn.Module, encoders: Iterable[str]) -> List[str]:
    """State-dict prefixes of the encoders ``model.get_encoder(name)``.

    A momentum encoder (an MMEngine ``BaseAveragedModel``) contributes the
    network it averages (``momentum_encoder.module.``), not its step counter.

    Args:
        model (nn.Module): A :class:`BaseUSLReID` (wrappers are unwrapped).
        encoders (Iterable[str]): Encoder names, e.g. ``['student']``.

    Returns:
        list[str]: One prefix per encoder, e.g. ``['encoder.']``.
    """
    model = get_ori_model(model)
    names = {id(module): name for name, module in model.named_modules()}
    prefixes = []
    for name in encoders:
        encoder = model.get_encoder(name)
        if isinstance(encoder, BaseAveragedModel):
            encoder = encoder.module
        if id(encoder) not in names or names[id(encoder)] == '':
            raise ValueError(f'get_encoder({name!r}) of '
                             f'{type(model).__name__} is not a sub-module.')
        prefixes.append(names[id(encoder)] + '.')
    return prefixes


def _state_dict_of(checkpoint: Union[str, dict]) -> Dict:
    if isinstance(checkpoint, str):
        checkpoint = load_weights_only(checkpoint)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'expected a checkpoint dict, got {type(checkpoint).__name__}.')
    state = checkpoint.get('state_dict', checkpoint)
    # as MMEngine's loader: drop a DDP ``module.`` prefix
    return OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state.items())


def _listing(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:MAX_KEYS_SHOWN])
    more = len(keys) - MAX_KEYS_SHOWN
    return shown + (f', ... ({more} more)' if more > 0 else '')


def _group(keys: Iterable[str]) -> str:
    """``memory.* (2 keys), pseudo_labels`` style summary by first name."""
    groups: Dict[str, int] = OrderedDict()
    for key in sorted(keys):
        head = key.split('.')[0]
        groups[head] = groups.get(head, 0) + 1
    parts = []
    for head, count in groups.items():
        parts.append(head if count == 1 and head in keys else
                     f'{head}.* ({count} keys)')
    return ', '.join(parts)


@renamed_kwargs(sources='encoders')
def check_checkpoint_fits(model: nn.Module,
                          checkpoint: Union[str, dict],
                          encoders: Sequence[str] = ('student', ),
                          name: str = 'checkpoint',
                          hint: Optional[str] = None) -> Dict[str, List[str]]:
    """Compare the feature encoders of ``model`` with a checkpoint.

    Every parameter and buffer under :func:`feature_prefixes` must be in the
    checkpoint with the same shape, and the checkpoint must hold nothing
    else under those prefixes. Keys outside them — cluster memories
    (``memory.*``), camera proxies (``proxy_memory.*``), ``pseudo_labels``,
    the momentum encoder when the student is tested, the student when the
    momentum encoder is tested — are not used to compute features; they are
    logged (INFO) as ignored, and never cause an error.

    Args:
        model (nn.Module): The built model (wrappers are unwrapped).
        checkpoint (str | dict): A path (loaded with MMEngine's loader,
            ``weights_only`` where torch defaults to it) or a loaded
            checkpoint / state dict.
        encoders (Sequence[str]): Encoders whose features will be used,
            e.g. ``['momentum']`` or ``['student', 'momentum']``.
        name (str): How the checkpoint is called in messages (its path).
        hint (str, optional): The last line of the error (what to do).
            Defaults to pointing at the checkpoint's own config and
            ``--encoder`` (testing).

    Returns:
        dict: ``checked`` (the keys compared), ``ignored_checkpoint_keys``
        and ``ignored_model_keys`` (outside the feature encoders).

    Raises:
        CheckpointMismatchError: Missing, unexpected or wrongly shaped keys
            in the feature encoders; the message names them.
    """
    if isinstance(checkpoint, str) and name == 'checkpoint':
        name = checkpoint
    state = _state_dict_of(checkpoint)
    ori = get_ori_model(model)
    prefixes = tuple(feature_prefixes(ori, encoders))
    model_state = ori.state_dict()
    needed = [k for k in model_state if k.startswith(prefixes)]
    in_scope = [k for k in state if k.startswith(prefixes)]
    missing = [k for k in needed if k not in state]
    unexpected = [k for k in in_scope if k not in model_state]
    shapes = [
        f'{k} (checkpoint {tuple(state[k].shape)}, model '
        f'{tuple(model_state[k].shape)})' for k in needed
        if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(model_state[k].shape)
    ]
    if missing or unexpected or shapes:
        consequence = ('the features would come from a partly random '
                       'encoder' if hint is None else
                       'the encoder would be only partly loaded from it')
        lines = [
            f'{name} does not fit the {type(ori).__name__} of the config '
            f'for the encoder(s) {list(encoders)} (weights under '
            f'{", ".join(p + "*" for p in prefixes)}); {consequence}.'
        ]
        if missing:
            lines.append(f'missing keys ({len(missing)}): '
                         f'{_listing(missing)}')
        if unexpected:
            lines.append(f'unexpected keys ({len(unexpected)}): '
                         f'{_listing(unexpected)}')
        if shapes:
            lines.append(f'shape mismatch ({len(shapes)}): '
                         f'{_listing(shapes)}')
        lines.append(hint or (
            'Use the config the checkpoint was trained with (its '
            "meta['cfg'] holds it), or the right --encoder."))
        raise CheckpointMismatchError('\n  '.join(lines))
    ignored_ckpt = [k for k in state if not k.startswith(prefixes)]
    ignored_model = [
        k for k in model_state if not k.startswith(prefixes) and k not in state
    ]
    if ignored_ckpt or ignored_model:
        msg = (f'{name}: {len(needed)} weights of '
               f'{", ".join(p + "*" for p in prefixes)} checked and loaded.')
        if ignored_ckpt:
            msg += (' Not used for the features (ignored): '
                    f'{_group(ignored_ckpt)}.')
        if ignored_model:
            msg += (' Absent from the checkpoint, not used for the features: '
                    f'{_group(ignored_model)}.')
        print_log(msg, logger='current', level=logging.INFO)
    return dict(
        checked=needed,
        ignored_checkpoint_keys=ignored_ckpt,
        ignored_model_keys=ignored_model)


@renamed_kwargs(sources='encoders')
def load_checked_checkpoint(model: nn.Module, checkpoint: str,
                            encoders: Sequence[str]) -> Dict:
    """Read ``checkpoint`` once (weights-only), check that it fits the
    feature encoders ``encoders`` (:func:`check_checkpoint_fits`), and
    load it into ``model`` (the other parts non-strictly).

    Returns:
        dict: The checkpoint as read.

    Raises:
        CheckpointMismatchError: See :func:`check_checkpoint_fits`.
    """
    ckpt = load_weights_only(checkpoint)
    check_checkpoint_fits(model, ckpt, encoders, name=str(checkpoint))
    load_state_into_model(model, ckpt)
    return ckpt
