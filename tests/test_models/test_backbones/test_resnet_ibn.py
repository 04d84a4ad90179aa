# Copyright (c) mmreid_usl contributors. All rights reserved.
"""IBN-ResNet-a: structure, IBN maths and loading the IBN-Net release.

The IBN-Net checkpoint layout is rebuilt from torchvision, independently of
the package (``tests/ibn_net_release.py``), and served from the torch hub
cache (``$TORCH_HOME/hub/checkpoints/<file name of the URL>``), so
MMEngine-style ``init_cfg`` URLs resolve without network.
"""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models.backbones import ResNetIBN
from mmreid_usl.models.backbones.resnet_ibn import IBN_NET_URLS
from mmreid_usl.models.utils import IBN

torchvision = pytest.importorskip('torchvision')
from ibn_net_release import ibn_net_release_state_dict  # noqa: E402 (tests/)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    path = osp.join(torch.hub.get_dir(), 'checkpoints')
    assert path.startswith(str(tmp_path))
    return path


def _save(state, hub_dir, url):
    import os
    os.makedirs(hub_dir, exist_ok=True)
    torch.save(state, osp.join(hub_dir, osp.basename(url)))


def test_ibn_layer_maths():
    torch.manual_seed(0)
    ibn = IBN(6, norm_cfg=dict(type='BN')).train()
    with torch.no_grad():
        ibn.IN.weight.copy_(torch.rand(3) + 0.5)
        ibn.IN.bias.copy_(torch.rand(3))
    x = torch.randn(4, 6, 5, 3)
    out = ibn(x)
    ref_in = F.instance_norm(x[:, :3], weight=ibn.IN.weight, bias=ibn.IN.bias)
    ref_bn = F.batch_norm(x[:, 3:], None, None, training=True)
    assert torch.allclose(out[:, :3], ref_in, atol=1e-5)
    assert torch.allclose(out[:, 3:], ref_bn, atol=1e-5)
    with pytest.raises(ValueError, match='num_features'):
        IBN(1)


def test_structure_ibn_a():
    model = ResNetIBN(depth=50, strides=(1, 2, 2, 1), out_indices=(3, ))
    for i, layer in enumerate([model.layer1, model.layer2, model.layer3]):
        for block in layer:
            assert isinstance(block.norm1, IBN)
            assert block.norm1.half == block.norm1.num_features // 2
            assert not isinstance(block.norm2, IBN)
    assert all(not isinstance(b.norm1, IBN) for b in model.layer4)
    out = model(torch.randn(2, 3, 64, 32))
    assert out[-1].shape == (2, 2048, 4, 2)  # last stride 1
    frozen = ResNetIBN(depth=50, frozen_stages=1)
    assert not frozen.layer1[0].norm1.IN.weight.requires_grad
    assert frozen.layer2[0].norm1.IN.weight.requires_grad
    with pytest.raises(ValueError, match='one flag per stage'):
        ResNetIBN(depth=50, ibn_stages=(True, ))


@pytest.mark.parametrize('depth', [50, 101])
def test_key_layout_matches_release(depth):
    release = ibn_net_release_state_dict(depth)
    own = ResNetIBN(depth=depth).state_dict()
    expected = {k: v.shape for k, v in release.items() if k[:3] != 'fc.'}
    assert {k: v.shape for k, v in own.items()} == expected


def test_pretrained_url_loads_every_weight(hub_cache):
    url = IBN_NET_URLS['resnet50_ibn_a']
    release = ibn_net_release_state_dict(50)
    _save(release, hub_cache, url)
    model = ResNetIBN(
        depth=50,
        strides=(1, 2, 2, 1),
        out_indices=(3, ),
        init_cfg=dict(type='Pretrained', checkpoint=url))
    model.init_weights()
    own = model.state_dict()
    backbone_keys = [k for k in release if not k.startswith('fc.')]
    assert len(backbone_keys) == len(own) > 300
    for key in backbone_keys:
        assert torch.equal(own[key], release[key]), key


def test_wrapped_dataparallel_checkpoint_and_local_path(tmp_path):
    release = ibn_net_release_state_dict(50, seed=1)
    wrapped = {
        'state_dict': {f'module.{k}': v
                       for k, v in release.items()},
        'epoch': 100
    }
    path = tmp_path / 'resnet50_ibn_a.pth.tar'
    torch.save(wrapped, str(path))
    model = ResNetIBN(
        depth=50, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert torch.equal(model.layer2[3].norm1.BN.running_var,
                       release['layer2.3.bn1.BN.running_var'])


def test_plain_resnet_checkpoint_is_refused(tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(),
               str(tmp_path / 'r50.pth'))
    model = ResNetIBN(
        depth=50,
        init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'r50.pth')))
    with pytest.raises(KeyError, match=r'layer1\.0\.bn1\.IN\.weight'):
        model.init_weights()
