# Copyright (c) mmreid_usl contributors. All rights reserved.
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid_usl.models.algorithms.ice import ICE
from mmreid_usl.models.necks.bn_neck import BNNeck
from mmreid_usl.models.utils.reid_encoder import ReIDEncoder
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

DIM = 8


class _Pool(nn.Module):

    def forward(self, x):
        return x.mean((2, 3))


def _encoder():
    backbone = nn.Sequential(
        nn.Conv2d(3, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.ReLU())
    return ReIDEncoder(backbone, _Pool(), BNNeck(DIM))


def _model(**kwargs):
    torch.manual_seed(0)
    model = ICE(encoder=_encoder(), **kwargs)
    model.init_weights()
    return model


def _result(num=24, num_clusters=4, num_cams=3):
    labels = torch.arange(num) % num_clusters
    labels[-1] = -1
    feats = F.normalize(torch.randn(num, DIM), dim=1)
    camids = torch.arange(num) % num_cams + 1
    return PseudoLabelResult.from_labels(
        labels, dict(momentum=feats), camids=camids)


def _batch(result, num_p=2, num_k=4):
    """An exact P x K batch of sample indices of the training set."""
    idx = []
    for c in range(num_p):
        idx += torch.nonzero(result.labels == c).flatten()[:num_k].tolist()
    samples = [
        ReIDDataSample(
            metainfo=dict(sample_idx=i, camid=int(result.camids[i])))
        for i in idx
    ]
    inputs = torch.randn(3, len(idx), 3, 8, 4)
    return inputs, samples


def test_loss_keys_gradients_and_momentum_update():
    model = _model(momentum_bn_group_size=4)
    model.train()
    result = _result()
    model.set_pseudo_labels(result)
    assert model.proxy_memory.num_clusters == 4
    inputs, samples = _batch(result)
    losses = model.loss(inputs, samples)
    assert set(losses) == {
        'loss_agnostic', 'loss_cross', 'loss_h_ins', 'loss_s_ins'
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.momentum_encoder.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())
    # its BN statistics evolved from its own forwards
    ema_bn = model.momentum_encoder.module.backbone[1]
    assert not torch.equal(ema_bn.running_mean, torch.zeros(DIM))

    old = copy.deepcopy(model.momentum_encoder.module.state_dict())
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(0.5)
    model.momentum_update()
    student = dict(model.encoder.named_parameters())
    for name, p in model.momentum_encoder.module.named_parameters():
        assert torch.allclose(p, 0.999 * old[name] + 0.001 * student[name])
    for name, b in model.momentum_encoder.module.named_buffers():
        assert torch.equal(b, old[name]), name  # own buffers, not copied


def test_predict_uses_momentum_encoder_and_switches():
    model = _model()
    model.eval()
    x = torch.randn(2, 3, 8, 4)
    with torch.no_grad():
        model.momentum_encoder.module.neck.bn.weight.mul_(3.)
    out = model.predict(x)
    expect = F.normalize(model.momentum_encoder(x), dim=1)
    assert torch.allclose(out[0].pred_feature, expect[0], atol=1e-6)
    model.test_cfg['encoder'] = 'student'
    out = model.predict(x)
    assert torch.allclose(
        out[0].pred_feature,
        F.normalize(model.encoder(x), dim=1)[0],
        atol=1e-6)


def test_agnostic_variant_and_ablations():
    model = _model(loss_cross=None, loss_s_ins=None)
    model.train()
    result = _result()
    model.set_pseudo_labels(result)
    losses = model.loss(*_batch(result))
    assert set(losses) == {'loss_agnostic', 'loss_h_ins'}


def test_checkpoint_roundtrip_restores_everything():
    model = _model()
    model.train()
    result = _result()
    model.set_pseudo_labels(result)
    model.loss(*_batch(result))
    model.momentum_update()
    state = model.state_dict()
    assert any(k.startswith('momentum_encoder.module.') for k in state)
    fresh = _model()  # empty proxies and labels
    fresh.load_state_dict(state)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_needs_momentum_bank_cameras_and_multiview():
    model = _model()
    assert model.pseudo_label_banks == ('momentum', )
    result = _result()
    no_bank = PseudoLabelResult.from_labels(
        result.labels, dict(student=result.bank()), camids=result.camids)
    with pytest.raises(KeyError, match=r"no \['momentum'\] feature bank"):
        model.set_pseudo_labels(no_bank)
    result.camids = None
    with pytest.raises(ValueError, match='camids'):
        model.set_pseudo_labels(result)
    model.set_pseudo_labels(_result())
    with pytest.raises(ValueError):
        model.loss(torch.randn(4, 3, 8, 4), [])


def test_init_weights_syncs_once():
    model = _model()  # init_weights already called once
    enc = model.momentum_encoder.module
    assert all(
        torch.equal(a, b) for a, b in zip(enc.state_dict().values(),
                                          model.encoder.state_dict().values()))
    with torch.no_grad():
        enc.neck.bn.weight.add_(1.)
    model.init_weights()  # e.g. a second runner.train() after resume
    assert not torch.equal(enc.neck.bn.weight, model.encoder.neck.bn.weight)
