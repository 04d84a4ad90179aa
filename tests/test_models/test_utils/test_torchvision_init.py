# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The papers' ``init_cfg=torchvision://resnet50`` path, fed from a local file.

No network is used: MMEngine resolves ``torchvision://resnet50`` to
torchvision's URL and ``torch.hub`` serves it from
``$TORCH_HOME/hub/checkpoints/<file name of the URL>`` when that file exists,
which is where a user's first (online) run caches it. A torchvision-layout
ResNet-50 with known weights is written there, and the real paper configs are
built and initialised.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import get_torchvision_models

from mmreid_usl.registry import MODELS
from mmreid_usl.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


@pytest.fixture
def cached_resnet50(tmp_path, monkeypatch):
    """A seeded torchvision-layout ResNet-50 state dict in the hub cache."""
    torchvision = pytest.importorskip('torchvision')
    torch.manual_seed(0)
    state = torchvision.models.resnet50().state_dict()
    url = get_torchvision_models()['resnet50']
    hub = tmp_path / 'hub' / 'checkpoints'
    hub.mkdir(parents=True)
    torch.save(state, str(hub / osp.basename(url)))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    return state


@pytest.mark.parametrize('config', [
    'configs/cluster_contrast/cluster-contrast_r50_market.py',
    'configs/ice/ice_r50_market.py'
])
def test_paper_configs_load_torchvision_resnet50(cached_resnet50, config):
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(REPO, config))
    assert cfg.model.encoder.backbone.init_cfg.checkpoint == \
        'torchvision://resnet50'
    init_default_scope('mmreid_usl')
    model = MODELS.build(cfg.model)
    model.init_weights()
    backbone = model.encoder.backbone.state_dict()
    loaded = [k for k in cached_resnet50 if not k.startswith('fc.')]
    assert len(loaded) > 300
    for key in loaded:
        assert torch.equal(backbone[key], cached_resnet50[key]), key
    if hasattr(model, 'momentum_encoder'):  # ICE: same ImageNet start
        ema = model.momentum_encoder.module.backbone.state_dict()
        for key in loaded:
            assert torch.equal(ema[key], cached_resnet50[key]), key
