# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Explicit weight maps between our encoders and the reference networks.

A key map is a ``dict`` from one of our state-dict keys to one of the
reference's. :func:`check_key_map` proves it is a bijection between the two
sets of tensors (every tensor mapped exactly once, the shapes equal) before
:func:`copy_weights` copies anything, so a renamed or new layer on either
side stops the parity run instead of leaving a tensor at its random
initialisation.
"""
from typing import Dict, Iterable, List, Optional

import torch
import torch.nn as nn

#: torchvision ResNet stages in the reference's ``nn.Sequential`` ``base``
#: (conv1, bn1, relu, maxpool, layer1..4) -> their index there.
_RESNET_BASE = {
    'conv1': 0,
    'bn1': 1,
    'layer1': 4,
    'layer2': 5,
    'layer3': 6,
    'layer4': 7
}


def resnet_encoder_key_map(ours_keys: Iterable[str],
                           ours_prefix: str = 'encoder.',
                           ref_prefix: str = '',
                           pooling: Optional[str] = 'gap',
                           neck: str = 'feat_bn') -> Dict[str, str]:
    """Our ReIDEncoder (mmpretrain ResNet, pooling, BNNeck) -> the
    open-reid style ``ResNet`` of Cluster Contrast / ICE / DCMIP.

    mmpretrain's ResNet names its modules as torchvision does (``conv1``,
    ``bn1``, ``layerN.M.{conv,bn}K``, ``downsample.{0,1}``); the reference
    wraps the same modules in ``base = nn.Sequential(conv1, bn1, relu,
    maxpool, layer1, ..., layer4)``, pools with ``gap`` (GeM's learnable
    ``p``) and normalises with ``feat_bn``.

    Args:
        ours_keys (Iterable[str]): Our state-dict keys (others than the
            encoder's are skipped).
        ours_prefix (str): Prefix of the encoder in our state dict.
        ref_prefix (str): Prefix of the reference network in its state dict.
        pooling (str, optional): Reference name of the pooling module with
            parameters (GeM ``p``); None when ours has none either.
        neck (str): Reference name of the BNNeck BatchNorm1d.

    Returns:
        dict[str, str]: ours -> reference.
    """
    out = {}
    for key in ours_keys:
        if not key.startswith(ours_prefix):
            continue
        rest = key[len(ours_prefix):]
        part, _, tail = rest.partition('.')
        if part == 'backbone':
            stage, _, leaf = tail.partition('.')
            if stage not in _RESNET_BASE:
                raise KeyError(f'unexpected backbone key {key!r}')
            out[key] = f'{ref_prefix}base.{_RESNET_BASE[stage]}.{leaf}'
        elif part == 'pooling':
            if pooling is None:
                raise KeyError(f'{key!r}: the reference pooling has no '
                               'parameters')
            out[key] = f'{ref_prefix}{pooling}.{tail}'
        elif part == 'neck':
            # BNNeck.bn.<param> -> feat_bn.<param>
            _, _, leaf = tail.partition('.')
            out[key] = f'{ref_prefix}{neck}.{leaf}'
        else:
            raise KeyError(f'unexpected encoder key {key!r}')
    return out


def theory_key_map(ours_keys: Iterable[str],
                   ours_prefix: str = 'encoder.') -> Dict[str, str]:
    """Our Theory model (mmpretrain ResNet, average pooling, FCBNNeck, the
    stage-1 classifier) -> Theory's ``reid/models/resnet.py``.

    Theory keeps the torchvision ResNet as ``base`` with its own module
    names (``base.conv1``, ``base.layer1``, ...), the embedding as ``feat``
    (FC) + ``feat_bn`` and the identity classifier as ``classifier_x2``.
    Its ``base.fc`` (torchvision's ImageNet classifier) is never used by
    its forward: list it in ``ignore`` of :func:`check_key_map`.
    """
    out = {}
    for key in ours_keys:
        if key.startswith('classifier.'):
            out[key] = 'classifier_x2.' + key[len('classifier.'):]
            continue
        if not key.startswith(ours_prefix):
            continue
        part, _, tail = key[len(ours_prefix):].partition('.')
        if part == 'backbone':
            stage, _, leaf = tail.partition('.')
            if stage not in _RESNET_BASE:
                raise KeyError(f'unexpected backbone key {key!r}')
            out[key] = f'base.{stage}.{leaf}'
        elif part == 'neck':
            layer, _, leaf = tail.partition('.')
            names = {'fc': 'feat', 'bn': 'feat_bn'}
            if layer not in names:
                raise KeyError(f'unexpected neck key {key!r}')
            out[key] = f'{names[layer]}.{leaf}'
        else:
            raise KeyError(f'unexpected encoder key {key!r}')
    return out


def check_key_map(ours: Dict[str, torch.Tensor],
                  ref: Dict[str, torch.Tensor],
                  key_map: Dict[str, str],
                  ignore: Iterable[str] = ()) -> List[str]:
    """Problems of ``key_map`` as a bijection between two state dicts.

    Args:
        ours (dict): Our state dict, restricted to the mapped module.
        ref (dict): The reference state dict.
        key_map (dict): ours -> reference.
        ignore (Iterable[str]): Reference keys that are deliberately not
            mapped (tensors its forward never uses); they must exist.

    Returns:
        list[str]: Empty when every tensor of both sides is mapped exactly
        once to a tensor of the same shape; otherwise one line per problem.
    """
    problems = []
    unmapped = sorted(set(ours) - set(key_map))
    if unmapped:
        problems.append(f'ours not mapped: {unmapped[:5]} '
                        f'({len(unmapped)} in all)')
    unknown = sorted(k for k in key_map if k not in ours)
    if unknown:
        problems.append(f'mapped keys that we do not have: {unknown[:5]}')
    targets = list(key_map.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        problems.append(f'reference keys mapped twice: {twice[:5]}')
    missing = sorted(set(targets) - set(ref))
    if missing:
        problems.append(f'reference keys that do not exist: {missing[:5]}')
    ignore = set(ignore)
    absent = sorted(ignore - set(ref))
    if absent:
        problems.append(f'ignored reference keys that do not exist: '
                        f'{absent[:5]}')
    uncovered = sorted(set(ref) - set(targets) - ignore)
    if uncovered:
        problems.append(f'reference keys not covered: {uncovered[:5]} '
                        f'({len(uncovered)} in all)')
    for k, t in key_map.items():
        if k in ours and t in ref and ours[k].shape != ref[t].shape:
            problems.append(f'shape {k} {tuple(ours[k].shape)} != '
                            f'{t} {tuple(ref[t].shape)}')
    return problems


def sub_state_dict(module: nn.Module, prefix: str = '') -> dict:
    """The state dict of ``module`` restricted to keys under ``prefix``."""
    return {
        k: v
        for k, v in module.state_dict().items() if k.startswith(prefix)
    }


@torch.no_grad()
def copy_weights(ours: nn.Module,
                 ref: nn.Module,
                 key_map: Dict[str, str],
                 ours_prefix: str = 'encoder.',
                 ignore: Iterable[str] = ()) -> None:
    """Copy our tensors into the reference after checking the map.

    Raises:
        KeyError: If the map is not a bijection of equal shapes.
    """
    ours_sd = {
        k: v
        for k, v in ours.state_dict().items() if k in key_map
    } if ours_prefix is None else sub_state_dict(ours, ours_prefix)
    ref_sd = ref.state_dict()
    problems = check_key_map(ours_sd, ref_sd, key_map, ignore)
    if problems:
        raise KeyError('weight map is not a bijection:\n  ' +
                       '\n  '.join(problems))
    for k, t in key_map.items():
        ref_sd[t].copy_(ours_sd[k])


def state_diff(ours: nn.Module, ref: nn.Module, key_map: Dict[str, str],
               ours_prefix: str = 'encoder.') -> Dict[str, torch.Tensor]:
    """Per mapped tensor, ``ours - ref`` (float64)."""
    ours_sd = ours.state_dict()
    ref_sd = ref.state_dict()
    return {
        k: ours_sd[k].double() - ref_sd[t].double()
        for k, t in key_map.items()
    }
