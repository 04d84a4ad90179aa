# Copyright (c) mmreid_usl contributors. All rights reserved.
"""IBN-ResNet-a: mmpretrain's ResNet with Instance-Batch Normalization."""
import os.path as osp
from typing import Dict, Sequence

import torch
from mmengine.fileio import get_local_path
from mmengine.logging import print_log
from mmpretrain.models.backbones import ResNet

from mmreid_usl.engine.checkpointing.weights_only import \
    load_url_weights_only
from mmreid_usl.registry import MODELS
from ..utils.ibn import IBN

#: The IBN-Net authors' ImageNet checkpoints (release v1.0).
IBN_NET_URLS = dict(
    resnet50_ibn_a='https://github.com/XingangPan/IBN-Net/releases/download/'
    'v1.0/resnet50_ibn_a-d9d0bb7b.pth',
    resnet101_ibn_a='https://github.com/XingangPan/IBN-Net/releases/download/'
    'v1.0/resnet101_ibn_a-59ea0ac6.pth')


def convert_ibn_net_state_dict(checkpoint: Dict) -> Dict[str, torch.Tensor]:
    """Map an IBN-Net ImageNet checkpoint to :class:`ResNetIBN`'s keys.

    The IBN-Net release uses torchvision's ResNet names (``conv1``, ``bn1``,
    ``layer{1-4}.{i}.conv{1-3}`` / ``bn{1-3}`` / ``downsample.{0,1}``, the IBN
    halves as ``bn1.IN`` and ``bn1.BN``), which are also mmpretrain's
    :class:`ResNet` names, so the mapping is the identity on those keys. It
    unwraps a ``{'state_dict': ...}`` checkpoint, strips the ``module.``
    prefix of ``DataParallel`` checkpoints (the older ``.pth.tar`` release)
    and drops the ImageNet classifier ``fc.*``.

    Args:
        checkpoint (dict): The loaded checkpoint.

    Returns:
        dict[str, Tensor]: The backbone state dict.
    """
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    out = {}
    for key, value in state.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith('fc.'):
            continue
        out[key] = value
    return out


def load_ibn_net_checkpoint(checkpoint: str,
                            map_location: str = 'cpu') -> Dict:
    """Load a checkpoint with ``torch.load(weights_only=True)``.

    ``http(s)://`` files go through :func:`load_url_weights_only` (torch.hub's
    cache ``torch.hub.get_dir()/checkpoints/<file name>``, downloaded only
    when absent; rank 0 first under DDP, as MMEngine's own loader); other
    paths through :func:`mmengine.fileio.get_local_path`.
    """
    if checkpoint.startswith(('http://', 'https://')):
        return load_url_weights_only(checkpoint, map_location=map_location)
    with get_local_path(checkpoint) as path:
        if not osp.isfile(path):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} not found.')
        return torch.load(path, map_location=map_location, weights_only=True)


@MODELS.register_module()
class ResNetIBN(ResNet):
    r"""IBN-ResNet-a (IBN-Net-a), an mmpretrain :class:`ResNet` variant.

    Pan et al., "Two at Once: Enhancing Learning and Generalization Capacities
    via IBN-Net", ECCV 2018 (https://arxiv.org/abs/1807.09441; official code
    and ImageNet weights https://github.com/XingangPan/IBN-Net). In every
    residual block of the stages flagged in ``ibn_stages`` (layer1-3 for
    IBN-a, not layer4), the first normalisation after ``conv1`` is replaced
    by :class:`IBN`: instance norm (affine) on the first half of the channels
    and batch norm on the rest,
    :math:`[\,\mathrm{IN}(x_{1..C/2}) \,\|\, \mathrm{BN}(x_{C/2+1..C})\,]`.
    Everything else (stem, strides, ``out_indices``, ``frozen_stages``,
    ``norm_eval``...) is :class:`mmpretrain.models.ResNet`.

    ``init_cfg=dict(type='Pretrained', checkpoint=URL_OR_PATH)`` loads the
    IBN-Net authors' checkpoints (see :data:`IBN_NET_URLS`; torchvision key
    layout, converted by :func:`convert_ibn_net_state_dict`) with
    ``weights_only=True``; every backbone tensor must be present with the
    right shape, otherwise a ``KeyError`` / ``RuntimeError`` names the keys.

    Args:
        depth (int): 18, 34, 50, 101 or 152 (IBN-Net releases 50 and 101).
        ibn_stages (Sequence[bool]): Per stage, whether its blocks use IBN.
            Defaults to ``(True, True, True, False)`` (IBN-a).
        ibn_ratio (float): Instance-normalised fraction. Defaults to 0.5.
        **kwargs: Other arguments of :class:`mmpretrain.models.ResNet`.
    """

    def __init__(self,
                 depth: int,
                 ibn_stages: Sequence[bool] = (True, True, True, False),
                 ibn_ratio: float = 0.5,
                 **kwargs) -> None:
        super().__init__(depth, **kwargs)
        if len(ibn_stages) != self.num_stages:
            raise ValueError(f'ibn_stages needs one flag per stage '
                             f'({self.num_stages}), got {tuple(ibn_stages)}.')
        self.ibn_stages = tuple(bool(s) for s in ibn_stages)
        self.ibn_ratio = ibn_ratio
        for stage, use_ibn in enumerate(self.ibn_stages):
            if not use_ibn:
                continue
            for block in getattr(self, self.res_layers[stage]):
                norm = getattr(block, block.norm1_name)
                setattr(block, block.norm1_name,
                        IBN(norm.num_features, ibn_ratio, self.norm_cfg))
        # The new norms must follow frozen_stages like the replaced ones.
        self._freeze_stages()

    def init_weights(self) -> None:
        """Load IBN-Net weights for a ``Pretrained`` ``init_cfg``, else the
        default ResNet initialisation."""
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        checkpoint = cfg['checkpoint']
        state = convert_ibn_net_state_dict(
            load_ibn_net_checkpoint(checkpoint,
                                    cfg.get('map_location', 'cpu')))
        own = self.state_dict()
        # BN counters may be absent from old checkpoints (torch < 0.4.1);
        # BatchNorm then restores them itself.
        missing = [
            k for k in own
            if k not in state and not k.endswith('num_batches_tracked')
        ]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise KeyError(
                f'{type(self).__name__}: {checkpoint} is not an IBN-ResNet-'
                f'{self.depth}-a checkpoint in the IBN-Net (torchvision) '
                f'layout: {len(missing)} missing keys {missing[:5]}, '
                f'{len(unexpected)} unexpected keys {unexpected[:5]}.')
        self.load_state_dict(state, strict=True)
        self._is_init = True
        print_log(
            f'{type(self).__name__}: loaded {len(state)} tensors from '
            f'{checkpoint}', logger='current')
