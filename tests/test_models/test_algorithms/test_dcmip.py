# Copyright (c) mmreid_usl contributors. All rights reserved.
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from mmreid_usl.models import (DCMIP, DiscrepantClusterNCELoss,
                               MultiInstanceProxyLoss)
from mmreid_usl.models.necks.bn_neck import BNNeck
from mmreid_usl.models.utils.reid_encoder import ReIDEncoder
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

DIM = 8
REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


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
        labels, banks, cluster_encoder='student', epoch=epoch)


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
    assert model.cluster_encoder == 'student'
    assert model.test_cfg['encoder'] == 'momentum'
    assert model.momentum == pytest.approx(0.001)  # alpha = 0.999
    assert model.ins_start_epoch == 20
    assert (model.dcp_weight, model.mip_weight) == (0.5, 0.5)
    assert model.dcp_memory.update_modes == ('hard', 'mean')
    assert model.momentum_shuffle_bn  # ShuffleBN unless switched off
    assert model.momentum_forward_needed
    assert model.instance_memory.encoder == 'momentum'
    # nested per-type ClusterMemory modules are not reset twice
    assert model.memories == [model.dcp_memory, model.instance_memory]
    # 'every': the instance proxies come from the freshly copied momentum
    # encoder = the student bank; no momentum pass needed
    assert model.pseudo_label_banks == ('student', )
    # 'until_mip' copies the student until the instance proxies start: the
    # momentum bank is extracted only once its EMA runs continuously
    until = _model(momentum_reinit='until_mip')
    assert until.pseudo_label_banks == ('student', )
    until.mip_start.fill_(3)
    assert until.pseudo_label_banks == ('student', 'momentum')
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
        mip_update_encoder='student',
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
    with pytest.raises(ValueError, match='mip_update_encoder'):
        _model(mip_update_encoder='ema')
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


def _bn_stats(module):
    return {
        k: v.clone()
        for k, v in module.state_dict().items()
        if k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
    }


@pytest.mark.parametrize('shuffle', [False, True])
def test_momentum_forward_without_shuffle_normalises_contiguous_chunks(
        shuffle):
    """``momentum_shuffle_bn=False``: DataParallel's BN of the unofficial
    code, the batch in consecutive chunks (P x K identity blocks), the first
    chunk's running statistics kept, no random draw."""
    model = _model(
        momentum_bn_group_size=4,
        momentum_shuffle_bn=shuffle,
        bn_running_stats='first_group')
    model.train()
    _drift(model.momentum_encoder)
    x = torch.randn(8, 3, 8, 4, generator=torch.Generator().manual_seed(2))
    first = copy.deepcopy(model.momentum_encoder.module)
    expect = torch.cat([
        first(x[:4]),
        copy.deepcopy(model.momentum_encoder.module)(x[4:])
    ])
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    out = model.momentum_forward(x)
    if shuffle:  # ShuffleBN: other groups
        assert not torch.allclose(out, expect, atol=1e-3)
        return
    torch.testing.assert_close(out, expect)
    assert torch.equal(torch.get_rng_state(), rng)
    stats, ref = _bn_stats(model.momentum_encoder.module), _bn_stats(first)
    for key in ref:
        torch.testing.assert_close(stats[key], ref[key], msg=key)


@pytest.mark.parametrize('source,buffers,needed', [
    ('momentum', 'own', True),
    ('student', 'own', True),  # the EMA's own BN statistics move
    ('student', 'ema', True),
    ('student', 'copy', False),  # nothing reads the forward
])
def test_momentum_forward_runs_unless_nothing_uses_it(source, buffers,
                                                      needed):
    model = _model(
        ins_start_epoch=0,
        mip_update_encoder=source,
        momentum_buffer_mode=buffers)
    assert model.momentum_forward_needed == needed
    model.train()
    result = _result(epoch=0)
    model.set_pseudo_labels(result)
    calls = []
    model.momentum_encoder.module.register_forward_pre_hook(
        lambda *args: calls.append(1))
    losses = model.loss(*_batch(result))
    assert set(losses) == {'loss_dcp', 'loss_mip'}
    assert bool(calls) == needed


def _code_model():
    """The model of ``dcmip_r50-code_market.py`` on the tiny encoder, with
    BN groups of 4 and K = 4 for a batch of 2 ids x 4."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/dcmip/dcmip_r50-code_market.py')).model
    cfg = cfg.to_dict()
    for key in ('type', 'encoder'):
        cfg.pop(key)
    cfg.update(bn_group_size=4, momentum_bn_group_size=4)
    cfg['instance_memory']['num_instances'] = 4
    torch.manual_seed(0)
    model = DCMIP(encoder=_encoder(), **cfg)
    model.init_weights()
    return model


def test_code_config_step_is_the_unofficial_one():
    """One stage-2 step of ``-code`` against the unofficial code's rules,
    re-derived here: its 2C-row cluster memory and hybrid loss, its
    per-cluster instance loss, the update branch its source labels
    ``#Market1501`` (proxy 1 batch-hard, proxy 2 batch mean, old weight
    0.1), the online features written into the instance proxies, and an
    EMA forward in contiguous DataParallel chunks."""
    model = _code_model()
    model.train()
    # stage 1: the cluster proxies only
    _perturb(model.encoder)
    model.set_pseudo_labels(_result(epoch=39))
    assert not model.mip_active
    assert model.pseudo_label_banks == ('student', )
    # stage 2: the EMA starts as the stage-1 model, then runs on its own
    _perturb(model.encoder)
    result = _result(epoch=40)
    model.set_pseudo_labels(result)
    assert _same(model.encoder, model.momentum_encoder.module)
    assert model.mip_active and int(model.mip_start) == 40
    assert model.pseudo_label_banks == ('student', 'momentum')
    _drift(model.momentum_encoder)

    inputs, samples = _batch(result, clusters=(0, 1))
    y = torch.tensor([0] * 4 + [1] * 4)
    P = model.dcp_memory.features.clone()  # (2, C, D)
    inst = model.instance_memory.features.clone()  # (C, K, D)
    student = copy.deepcopy(model.encoder)
    q = F.normalize(torch.cat([student(inputs[:4]), student(inputs[4:])]),
                    dim=1).detach()
    ema = copy.deepcopy(model.momentum_encoder.module)
    ema(inputs[:4])  # DataParallel: GPU 0's chunk owns the buffers
    tau = 0.05
    # the memory of 2C rows, [proxy 1; proxy 2], logits split in halves
    first, second = (q @ torch.cat([P[0], P[1]]).t() / tau).chunk(2, dim=1)
    l_dcp = 0.5 * (F.cross_entropy(second, y) +
                   torch.relu(F.cross_entropy(first, y) - 0.2))
    sims = torch.einsum('bd,ckd->bck', q, inst)
    logits = sims.max(dim=2).values  # other clusters: most similar slot
    rows = torch.arange(len(y))
    logits[rows, y] = sims[rows, y].min(dim=1).values  # own: least similar
    l_mip = F.cross_entropy(logits / tau, y)

    losses = model.loss(inputs, samples)
    torch.testing.assert_close(losses['loss_dcp'], l_dcp)  # weight 1
    torch.testing.assert_close(losses['loss_mip'], l_mip)  # weight 1
    after = model.dcp_memory.features
    for c in (0, 1):
        xs = q[y == c]
        hard = xs[(xs @ P[0, c]).argmin()]
        torch.testing.assert_close(
            after[0, c], F.normalize(0.1 * P[0, c] + 0.9 * hard, dim=0))
        torch.testing.assert_close(
            after[1, c], F.normalize(0.1 * P[1, c] + 0.9 * xs.mean(0), dim=0))
        # the batch's ONLINE features replace the cluster's 4 slots (the
        # unofficial code writes them in a random order: the same set)
        torch.testing.assert_close(model.instance_memory.features[c], xs)
    torch.testing.assert_close(after[:, 2:], P[:, 2:])
    torch.testing.assert_close(model.instance_memory.features[2:], inst[2:])
    # the EMA forward ran without shuffle, only chunk 0 moved its statistics
    stats, ref = _bn_stats(model.momentum_encoder.module), _bn_stats(ema)
    for key in ref:
        torch.testing.assert_close(stats[key], ref[key], msg=key)
