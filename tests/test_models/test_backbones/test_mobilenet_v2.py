# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torchvision

from mmreid_usl.models import ReIDMobileNetV2


@pytest.mark.parametrize('widen_factor', [1.0, 0.5])
def test_loads_torchvision_checkpoint_exactly(tmp_path, widen_factor):
    tv = torchvision.models.mobilenet_v2(width_mult=widen_factor)
    # non-trivial BN statistics so a mis-mapped key would show
    for m in tv.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / 'mbv2_tv.pth'
    torch.save(tv.state_dict(), path)  # torchvision layout, classifier too

    model = ReIDMobileNetV2(
        widen_factor=widen_factor,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    tv.eval(), model.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], tv.features(x))


def test_strict_load_of_torchvision_state_dict():
    tv = torchvision.models.mobilenet_v2()
    state = {k: v for k, v in tv.state_dict().items()
             if not k.startswith('classifier')}
    model = ReIDMobileNetV2()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
