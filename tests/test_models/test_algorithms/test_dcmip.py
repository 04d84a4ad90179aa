# Copyright (c) mmreid_usl contributors. All rights reserved.
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid_usl.models import (DCMIP, DiscrepantClusterNCELoss,
                               MultiInstanceProxyLoss)
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
    kwargs.setdefault('instance_memory',
                      dict(type='InstanceProxyMemory', num_instances=4))
    kwargs.setdefault('loss_mip',
                      dict(type='MultiInstanceProxyLoss', num_negatives=5))
    model = DCMIP(encoder=_encoder(), **kwargs)
    model.init_weights()
    return model


def _result(epoch, num_clusters=4, num=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num) % num_clusters
    labels[-1] = -1
    banks = {
        name: F.normalize(torch.randn(num, DIM, generator=g), dim=1)
        for name in ('student', 'momentum')
    }
    return PseudoLabelResult.from_labels(
        labels, banks, feat_source='student', epoch=epoch)


def _batch(result, clusters=(0, 1), k=4, seed=3):
    idx = []
    for c in clusters:
        idx += torch.nonzero(result.labels == c).flatten()[:k].tolist()
    samples = [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in idx]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(idx), 3, 8, 4, generator=g), samples


def _perturb(module):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3)
        for b in module.buffers():
            if b.dtype.is_floating_point:
                b.add_(0.1)


def _drift(momentum_encoder):
    """Move the momentum encoder away from the student (as EMA steps do)."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(4)
        for p in momentum_encoder.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) for k in sa)


def test_defaults_and_contract():
    model = _model()
    assert model.cluster_feat_source == 'student'
    assert model.test_cfg['feat_source'] == 'momentum'
    assert model.momentum == pytest.approx(0.001)  # alpha = 0.999
    assert model.ins_start_epoch == 20
    assert (model.dcp_weight, model.mip_weight) == (0.5, 0.5)
    assert model.dcp_memory.update_modes == ('hard', 'mean')
    assert model.instance_memory.feat_source == 'momentum'
    # nested per-type ClusterMemory modules are not reset twice
    assert model.memories == [model.dcp_memory, model.instance_memory]
    # 'every': the instance proxies come from the freshly copied momentum
    # encoder = the student bank; no momentum pass needed
    assert model.pseudo_label_banks == ('student', )
    assert _model(momentum_reinit='until_mip').pseudo_label_banks == (
        'student', 'momentum')
    assert _model(momentum_reinit='never').pseudo_label_banks == (
        'student', 'momentum')
    model.check_contract()


def test_before_e_ins_only_dcp_and_momentum_reinit():
    model = _model(ins_start_epoch=2)
    model.train()
    _perturb(model.encoder)
    assert not _same(model.encoder, model.momentum_encoder.module)
    result = _result(epoch=1)
    model.set_pseudo_labels(result)
    # paper: re-initialised from the student at the re-labelling
    assert _same(model.encoder, model.momentum_encoder.module)
    assert int(model.label_epoch) == 1 and int(model.mip_start) == -1
    assert not model.mip_active
    assert model.instance_memory.num_clusters == 0
    assert all(int(p.num_resets) == 1 for p in model.dcp_memory.proxies)
    inputs, samples = _batch(result)
    proxies = model.dcp_memory.features.clone()
    torch.manual_seed(5)
    ref = copy.deepcopy(model.encoder)
    expect = DiscrepantClusterNCELoss()(
        F.normalize(ref(inputs), dim=1), proxies,
        torch.tensor([0] * 4 + [1] * 4))
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_dcp'}
    # weight 1 before E_ins (not lambda)
    torch.testing.assert_close(losses['loss_dcp'], expect)
    assert not torch.equal(model.dcp_memory.features, proxies)  # updated


def test_after_e_ins_losses_updates_and_weights():
    model = _model(ins_start_epoch=2)
    model.train()
    _perturb(model.encoder)
    result = _result(epoch=2)
    model.set_pseudo_labels(result)
    assert model.mip_active and int(model.mip_start) == 2
    mem = model.instance_memory
    # filled from the re-initialised momentum encoder = the student bank
    index = mem.draw_members(result.labels, 4, 4, seed=0 + 2)
    torch.testing.assert_close(mem.features, result.bank('student')[index])

    _drift(model.momentum_encoder)
    inputs, samples = _batch(result, clusters=(0, 1))
    targets = torch.tensor([0] * 4 + [1] * 4)
    dcp_before = model.dcp_memory.features.clone()
    inst_before = mem.features.clone()
    student_ref = copy.deepcopy(model.encoder)
    momentum_ref = copy.deepcopy(model.momentum_encoder.module)
    q = F.normalize(student_ref(inputs), dim=1)
    keys = F.normalize(momentum_ref(inputs), dim=1)  # 1 BN group
    assert not torch.allclose(keys, q, atol=1e-3)
    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_dcp', 'loss_mip'}
    torch.testing.assert_close(
        losses['loss_dcp'],
        0.5 * DiscrepantClusterNCELoss()(q, dcp_before, targets))
    torch.testing.assert_close(
        losses['loss_mip'],
        0.5 * MultiInstanceProxyLoss(num_negatives=5)(q, inst_before,
                                                      targets))
    # replacement update with the MOMENTUM features of the batch
    torch.testing.assert_close(mem.features[0], keys[:4], atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(mem.features[1], keys[4:], atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(mem.features[2:], inst_before[2:])
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.momentum_encoder.parameters())
    assert any(p.grad is not None for p in model.encoder.parameters())


def test_unofficial_switches():
    model = _model(
        ins_start_epoch=0,
        dcp_weight=1.0,
        mip_weight=1.0,
        mip_update_source='student',
        loss_dcp=dict(type='DiscrepantClusterNCELoss', mode='hybrid'),
        dcp_memory=dict(
            type='DiscrepantClusterMemory',
            update_modes=('momentum', 'mean')))
    model.train()
    result = _result(epoch=0)
    model.set_pseudo_labels(result)
    _drift(model.momentum_encoder)
    inputs, samples = _batch(result)
    targets = torch.tensor([0] * 4 + [1] * 4)
    ref = copy.deepcopy(model.encoder)
    q = F.normalize(ref(inputs), dim=1)
    keys = F.normalize(copy.deepcopy(model.momentum_encoder)(inputs), dim=1)
    assert not torch.allclose(keys, q, atol=1e-3)
    dcp = DiscrepantClusterNCELoss(mode='hybrid')(
        q, model.dcp_memory.features.clone(), targets)
    mip = MultiInstanceProxyLoss(num_negatives=5)(
        q, model.instance_memory.features.clone(), targets)
    losses = model.loss(inputs, samples)
    torch.testing.assert_close(losses['loss_dcp'], dcp)  # weight 1
    torch.testing.assert_close(losses['loss_mip'], mip)  # weight 1
    # the unofficial bug: the ONLINE features replace the instance proxies
    torch.testing.assert_close(
        model.instance_memory.features[0], q[:4].detach(), atol=1e-5,
        rtol=1e-5)


@pytest.mark.parametrize('mode,reinit_epochs', [('every', [0, 1, 2, 3]),
                                                ('until_mip', [0, 1, 2]),
                                                ('never', [])])
def test_momentum_reinit_modes(mode, reinit_epochs):
    model = _model(ins_start_epoch=2, momentum_reinit=mode)
    for epoch in range(4):
        _perturb(model.encoder)
        result = _result(epoch=epoch)
        model.set_pseudo_labels(result)
        assert _same(model.encoder, model.momentum_encoder.module) == (
            epoch in reinit_epochs), epoch
        assert model.mip_active == (epoch >= 2)
        if epoch == 3 and mode != 'every':
            # continuous EMA: proxies from the momentum encoder's own bank
            index = model.instance_memory.draw_members(
                result.labels, 4, 4, seed=3)
            torch.testing.assert_close(model.instance_memory.features,
                                       result.bank('momentum')[index])


def test_without_mip_is_cluster_contrast_plus_dcp():
    model = _model(instance_memory=None, loss_mip=None)
    assert model.pseudo_label_banks == ('student', )
    model.train()
    result = _result(epoch=30)
    model.set_pseudo_labels(result)
    assert not model.mip_active
    assert set(model.loss(*_batch(result))) == {'loss_dcp'}
    never = _model(ins_start_epoch=None)
    never.set_pseudo_labels(result)
    assert not never.mip_active
    with pytest.raises(ValueError, match='together'):
        _model(loss_mip=None)
    with pytest.raises(ValueError, match='momentum_reinit'):
        _model(momentum_reinit='once')
    with pytest.raises(ValueError, match='mip_update_source'):
        _model(mip_update_source='ema')
    with pytest.raises(ValueError, match='ins_start_epoch'):
        _model(ins_start_epoch=-1)


def test_checkpoint_round_trip_with_other_cluster_count():
    src = _model(ins_start_epoch=1)
    src.train()
    src.set_pseudo_labels(_result(epoch=1, num_clusters=4))
    src.loss(*_batch(_result(epoch=1, num_clusters=4)))
    dst = _model(ins_start_epoch=1)
    dst.set_pseudo_labels(_result(epoch=0, num_clusters=3, seed=9))
    assert dst.dcp_memory.num_clusters == 3 and not dst.mip_active
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(dst, src.state_dict())  # non-strict, as MMEngine
    assert _same(src, dst)
    assert dst.dcp_memory.num_clusters == 4 and dst.mip_active
    assert int(dst.label_epoch) == 1 and int(dst.mip_start) == 1
    # the resumed model takes the same branch and gives the same losses
    src.eval()
    dst.eval()
    batch = _batch(_result(epoch=1, num_clusters=4), clusters=(2, 3))
    torch.manual_seed(1)
    a = src.loss(*batch)
    torch.manual_seed(1)
    b = dst.loss(*batch)
    assert a.keys() == b.keys() == {'loss_dcp', 'loss_mip'}
    for key in a:
        torch.testing.assert_close(a[key], b[key])
