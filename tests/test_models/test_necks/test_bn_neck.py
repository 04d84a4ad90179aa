# Copyright (c) mmreid_usl contributors. All rights reserved.
import torch

from mmreid_usl.models import BNNeck


def test_bn_neck_frozen_zero_bias():
    neck = BNNeck(in_channels=8)
    neck.init_weights()
    assert not neck.bn.bias.requires_grad and neck.bn.weight.requires_grad
    assert torch.equal(neck.bn.bias, torch.zeros(8))
    assert torch.equal(neck.bn.weight, torch.ones(8))
    x = torch.randn(6, 8, 1, 1, requires_grad=True)
    out = neck((x, ))  # tuple from a pooling neck, 4-d input
    assert out.shape == (6, 8)
    out.sum().backward()
    assert neck.bn.bias.grad is None
    neck.eval()
    torch.testing.assert_close(
        neck(x.detach()),
        (x.detach().flatten(1) - neck.bn.running_mean) /
        torch.sqrt(neck.bn.running_var + neck.bn.eps))
