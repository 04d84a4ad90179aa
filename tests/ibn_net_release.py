# Copyright (c) mmreid_usl contributors. All rights reserved.
"""IBN-Net release checkpoints (ImageNet IBN-ResNet-a) rebuilt for tests.

The IBN-Net checkpoints are torchvision ResNets whose ``bn1`` in the blocks
of layer1-3 is an ``IBN`` module with ``IN`` (InstanceNorm2d, affine, first
half of the channels) and ``BN`` (BatchNorm2d, the rest). The layout is
rebuilt here from torchvision, independently of the package, with every
tensor random, plus the ImageNet ``fc`` classifier.
"""
import torch
import torch.nn as nn


class _ReleaseIBN(nn.Module):
    """The released key layout: ``IN`` on the first half, ``BN`` the rest."""

    def __init__(self, planes):
        super().__init__()
        self.IN = nn.InstanceNorm2d(planes // 2, affine=True)
        self.BN = nn.BatchNorm2d(planes - planes // 2)


def ibn_net_release_state_dict(depth=50, seed=0):
    """A random state dict in the IBN-Net ``resnet{depth}_ibn_a`` layout."""
    import torchvision
    torch.manual_seed(seed)
    net = getattr(torchvision.models, f'resnet{depth}')()
    for name in ('layer1', 'layer2', 'layer3'):
        for block in getattr(net, name):
            block.bn1 = _ReleaseIBN(block.bn1.num_features)
    state = net.state_dict()
    for value in state.values():  # every tensor distinct and random
        if value.is_floating_point():
            value.copy_(torch.rand_like(value) + 0.5)
        else:
            value.fill_(int(torch.randint(1, 100, ())))
    return state
