# Copyright (c) mmreid_usl contributors. All rights reserved.
"""FCBNNeck: Theory's FC (no bias) -> BN -> ReLU embedding head."""
import pytest
import torch

from mmreid_usl.models import FCBNNeck, ReIDEncoder


def test_shapes_parameters_and_init():
    neck = FCBNNeck(in_channels=2048)
    neck.init_weights()
    # FC 2048 -> 2048 without bias, BN with trainable weight and bias
    assert neck.out_channels == 2048
    assert tuple(neck.fc.weight.shape) == (2048, 2048)
    assert neck.fc.bias is None
    assert neck.bn.weight.requires_grad and neck.bn.bias.requires_grad
    assert torch.equal(neck.bn.weight, torch.ones(2048))
    assert torch.equal(neck.bn.bias, torch.zeros(2048))
    # weight ~ N(0, 0.001^2) (4.2M draws: the std within 1%)
    assert float(neck.fc.weight.std()) == pytest.approx(0.001, rel=0.01)
    assert abs(float(neck.fc.weight.mean())) < 1e-5
    x = torch.randn(5, 2048, 1, 1)
    out = neck((x, ))  # tuple from a pooling neck, 4-d input
    assert out.shape == (5, 2048)
    assert (out >= 0).all() and (out == 0).any()  # after the ReLU
    assert neck(x.flatten(1)).shape == (5, 2048)
    # training: everything gets a gradient, the BN bias included
    out.sum().backward()
    assert neck.fc.weight.grad is not None and neck.bn.bias.grad is not None


def test_eval_is_relu_of_bn_of_fc():
    neck = FCBNNeck(in_channels=6, out_channels=4)
    assert tuple(neck.fc.weight.shape) == (4, 6)
    with torch.no_grad():
        neck.bn.running_mean.uniform_(-1, 1)
        neck.bn.running_var.uniform_(0.5, 2)
        neck.bn.weight.uniform_(0.5, 2)
        neck.bn.bias.uniform_(-1, 1)
    neck.eval()
    x = torch.randn(3, 6)
    bn = neck.bn
    expect = torch.relu((x @ neck.fc.weight.t() - bn.running_mean) /
                        torch.sqrt(bn.running_var + bn.eps) * bn.weight +
                        bn.bias)
    torch.testing.assert_close(neck(x), expect)
    plain = FCBNNeck(in_channels=6, with_relu=False).eval()
    assert (plain(torch.randn(7, 6)) < 0).any()


def test_encoder_widths_follow_the_head():
    backbone = dict(type='mmpretrain.ResNet', depth=18, base_channels=8,
                    out_indices=(3, ))
    pooling = dict(type='mmpretrain.GlobalAveragePooling')
    enc = ReIDEncoder(backbone, pooling, neck=dict(type='FCBNNeck'))
    assert (enc.pooled_dim, enc.feat_dim) == (64, 64)
    assert enc(torch.randn(2, 3, 32, 16)).shape == (2, 64)
    enc = ReIDEncoder(backbone, pooling,
                      neck=dict(type='FCBNNeck', out_channels=32))
    assert (enc.pooled_dim, enc.feat_dim) == (64, 32)
    assert enc(torch.randn(2, 3, 32, 16)).shape == (2, 32)
