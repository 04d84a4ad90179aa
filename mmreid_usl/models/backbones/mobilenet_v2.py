# Copyright (c) mmreid_usl contributors. All rights reserved.
"""MobileNetV2 that also loads torchvision-layout checkpoints."""
import re
from typing import Dict, List

from mmpretrain.models.backbones import MobileNetV2 as _MMPretrainMobileNetV2

from mmreid_usl.registry import MODELS


def convert_torchvision_mobilenet_v2(state_dict: Dict, prefix: str = '',
                                     arch: List[List[int]] = None) -> None:
    """Rename torchvision ``mobilenet_v2`` keys to mmpretrain's, in place.

    torchvision names the network ``features.{0..18}``: ``features.0`` is the
    stem, ``features.1..17`` the inverted residual blocks (in
    :attr:`MobileNetV2.arch_settings` order) and ``features.18`` the last
    1x1 conv. Inside a block, torchvision uses ``conv.{i}.0`` (conv) /
    ``conv.{i}.1`` (bn) for the ConvNormActivation parts and a bare
    ``conv.{n}`` conv + ``conv.{n+1}`` bn for the linear projection, while
    mmpretrain uses ``conv.{i}.conv`` / ``conv.{i}.bn`` for every part.
    Classifier keys are dropped.

    Args:
        state_dict (dict): The state dict to convert (modified in place).
        prefix (str): Prefix of the backbone's keys in ``state_dict``.
        arch (list, optional): ``arch_settings`` of the target network.
    """
    arch = arch or _MMPretrainMobileNetV2.arch_settings
    # torchvision block index -> (mmpretrain layer name, block index).
    block_map = {}
    tv_idx = 1
    for layer_idx, (_, _, num_blocks, _) in enumerate(arch, start=1):
        for block_idx in range(num_blocks):
            block_map[tv_idx] = (f'layer{layer_idx}', block_idx)
            tv_idx += 1
    last_idx = tv_idx
    pattern = re.compile(r'^features\.(\d+)\.(.*)$')
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        if rest.startswith('classifier.'):
            state_dict.pop(key)
            continue
        match = pattern.match(rest)
        if match is None:
            continue
        idx, tail = int(match.group(1)), match.group(2)
        if idx == 0 or idx == last_idx:
            name = 'conv1' if idx == 0 else 'conv2'
            part, param = tail.split('.', 1)
            new = f'{name}.{"conv" if part == "0" else "bn"}.{param}'
        else:
            layer, block = block_map[idx]
            conv_part = re.match(r'^conv\.(\d+)\.(.*)$', tail)
            part, param = int(conv_part.group(1)), conv_part.group(2)
            # The projection conv/bn come last and are bare ``conv.{n}`` /
            # ``conv.{n+1}`` in torchvision (``param`` has no sub-index).
            num_parts = 2 if arch[int(layer[5:]) - 1][0] == 1 else 3
            if part >= num_parts - 1 and not param[0].isdigit():
                is_bn = part == num_parts
                new_tail = f'conv.{num_parts - 1}.' \
                    f'{"bn" if is_bn else "conv"}.{param}'
            else:
                sub, p = param.split('.', 1)
                new_tail = f'conv.{part}.{"conv" if sub == "0" else "bn"}.{p}'
            new = f'{layer}.{block}.{new_tail}'
        state_dict[prefix + new] = state_dict.pop(key)


@MODELS.register_module()
class ReIDMobileNetV2(_MMPretrainMobileNetV2):
    """mmpretrain's MobileNetV2 that accepts torchvision checkpoints.

    Identical to :class:`mmpretrain.models.MobileNetV2`; when a state dict in
    torchvision's key layout (``features.*``) is loaded into it — through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)``, ``load_from`` or
    ``load_state_dict`` — its keys are converted first
    (:func:`convert_torchvision_mobilenet_v2`). This is how the CPU-scale
    configs use the ImageNet weights shipped in torchvision format.
    """

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        if any(k.startswith(prefix + 'features.') for k in state_dict):
            convert_torchvision_mobilenet_v2(state_dict, prefix,
                                             self.arch_settings)
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
