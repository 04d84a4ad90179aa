# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The DCMIP parity harness without the reference: its key maps, the
run-time source transform of the proxy-update branch, the replay of the
instance-proxy draws and the comparators, with our own model on both sides
and with deliberately perturbed copies (which must fail)."""
import argparse
import contextlib
import copy
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

from parity import common, dcmip  # noqa: E402
from parity.keymap import check_key_map, copy_weights  # noqa: E402
from parity.keymap import sub_state_dict  # noqa: E402
from parity.report import ParityReport  # noqa: E402

from mmreid_usl.models.memories import InstanceProxyMemory  # noqa: E402
from mmreid_usl.registry import MODELS  # noqa: E402

#: A toy module with the structure of the two branches (not the reference's
#: code): the first is commented out, the second runs.
TOY = '''
def update(store, index, values, m):
    for index in [index]:
        distances = [v * store[index] for v in values]

        #Market1501
        # hard = distances.index(min(distances))
        # store[index] = store[index] * m + (1 - m) * values[hard]
        # store[index] = round(store[index], 6)

        #MSMT17
        for value in values:
            store[index] = store[index] * m + (1 - m) * value
            store[index] = round(store[index], 6)

        mean = sum(values) / len(values)
    return store
'''


def _run_toy(src):
    ns = {}
    exec(compile(src, 'toy', 'exec'), ns)
    return ns['update']({0: 1.0}, 0, [2.0, -3.0], 0.5)[0]


def test_market1501_source_swaps_exactly_the_two_branches():
    out = dcmip.market1501_source(TOY)
    changed = [(a, b) for a, b in zip(TOY.split('\n'), out.split('\n'))
               if a != b]
    assert len(changed) == 6
    assert all(b.strip() == a.strip()[2:] for a, b in changed[:3])
    assert all(b.strip() == '# ' + a.strip() for a, b in changed[3:])
    # the committed loop: two sequential steps (1 -> 1.5 -> -0.75); the
    # enabled branch: one step with the least similar value (-3), the loop
    # gone
    assert _run_toy(TOY) == pytest.approx(-0.75)
    assert _run_toy(out) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match='reference changed'):
        dcmip.market1501_source(TOY.replace('#Market1501', '#Market'))
    with pytest.raises(ValueError, match='reference changed'):
        dcmip.market1501_source(out)  # already transformed


def test_replay_choice_returns_our_draws():
    replay = dcmip.ReplayChoice()
    assert replay(4, 6, replace=True).tolist() == [0, 1, 2, 3, 0, 1]
    assert replay(16, 16, replace=False).tolist() == list(range(16))
    labels = torch.tensor([0, 1, 0, 1, 1, 2, 2, 0])
    draws = InstanceProxyMemory.draw_members(labels, 3, 5, seed=3)
    replay.add_draws(labels, draws)
    for c in range(3):
        members = np.where(labels.numpy() == c)[0]
        assert replay(members, 5, True).tolist() == draws[c].tolist()
    with pytest.raises(KeyError, match='clusterings differ'):
        replay(np.array([0, 1]), 5, True)
    with pytest.raises(ValueError, match='asked'):
        replay(np.where(labels.numpy() == 0)[0], 4, True)
    ns = replay.numpy()
    assert ns.random.choice is replay and ns.where is np.where
    assert np.random.choice is not replay  # the real numpy is untouched
    assert replay.slot_calls == 2 and replay.member_calls == 3


def _reference_like_replacement(features_ema, feats, targets, num_inst,
                                choice):
    """What the reference's instance-proxy replacement does, re-stated from
    its description: the batch instances of a cluster, in batch order,
    written into its K rows c + C k in the order ``choice`` gives."""
    num = len(features_ema) // num_inst
    by_cluster = {}
    for f, t in zip(feats, targets.tolist()):
        by_cluster.setdefault(t, []).append(f)
    for c, fs in by_cluster.items():
        rows = [c + num * k for k in range(num_inst)]
        ids = choice(len(fs), len(rows), replace=len(fs) < 16)
        features_ema[rows] = torch.stack(fs)[ids]
    return features_ema


def test_instance_proxies_on_both_sides_and_perturbed():
    g = torch.Generator().manual_seed(0)
    num, k, dim = 5, 4, 8
    bank = F.normalize(torch.randn(30, dim, generator=g), dim=1)
    labels = torch.arange(30) % num
    mem = InstanceProxyMemory(dim, num_instances=k)
    from mmreid_usl.structures import PseudoLabelResult
    mem.reset(PseudoLabelResult.from_labels(labels.numpy(), {
        'momentum': bank}, cluster_encoder='momentum', epoch=2))
    layout = dcmip._slot_layout(mem.features)
    assert torch.equal(layout[3 + num * 2], mem.features[3, 2])
    feats = F.normalize(torch.randn(12, dim, generator=g), dim=1)
    targets = torch.tensor([1, 3, 1, 3, 1, 3, 1, 3, 0, 0, 0, 0])
    replay = dcmip.ReplayChoice()
    ref = _reference_like_replacement(layout.clone(), feats, targets, k,
                                      replay)
    mem.update(feats, targets)
    rep = ParityReport('dcmip')
    rep.compare('components', 'same', dcmip._slot_layout(mem.features), ref)
    assert rep.passed
    # a permutation of the slots (the reference's own draw) is another
    # memory element by element, the same set per cluster
    perm = _reference_like_replacement(
        layout.clone(), feats, targets, k,
        lambda n, size, replace: (np.arange(size) + 1) % n)
    rep.compare('components', 'permuted', dcmip._slot_layout(mem.features),
                perm)
    assert not rep.levels['components']['permuted']['pass']


def _code_model(depth: int = 18):
    cfg = common.load_config(dcmip.CONFIG, dcmip._switch_values())
    cfg.model.encoder.backbone.depth = depth
    cfg.model.dcp_memory.feat_dim = cfg.model.instance_memory.feat_dim = \
        512 if depth < 50 else 2048
    return cfg, common.build_model(cfg, 0)


class _OpenReIDStyle(nn.Module):
    """The layout of the reference's ``models.create('resnet50', norm=True,
    pooling_type='gem')`` (``base``, ``gap.p``, ``feat_bn``), torchvision
    resnet18 inside."""

    def __init__(self) -> None:
        super().__init__()
        r = torchvision.models.resnet18(weights=None)
        r.layer4[0].conv1.stride = (1, 1)
        r.layer4[0].downsample[0].stride = (1, 1)
        self.base = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool,
                                  r.layer1, r.layer2, r.layer3, r.layer4)
        self.gap = nn.Module()
        self.gap.p = nn.Parameter(torch.ones(1) * 3)
        self.feat_bn = nn.BatchNorm1d(512)

    def forward(self, x):
        x = self.base(x).clamp(min=1e-6).pow(self.gap.p)
        x = x.mean((2, 3)).pow(1.0 / self.gap.p)
        return F.normalize(self.feat_bn(x), dim=1)


def test_key_maps_of_both_encoders_and_perturbed():
    cfg, ours = _code_model()
    maps = dcmip.maps_for(ours)
    assert set(maps) == {'student', 'momentum'}
    assert sorted(maps['student'].values()) == sorted(
        maps['momentum'].values())
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    rep = ParityReport('dcmip')
    with torch.no_grad():
        for p in ours.momentum_encoder.parameters():
            p.add_(0.01)  # the two encoders differ
    ours.eval()
    for name, prefix in dcmip.PREFIX.items():
        ref = _OpenReIDStyle()
        assert check_key_map(sub_state_dict(ours, prefix),
                             ref.state_dict(), maps[name]) == []
        copy_weights(ours, ref, maps[name], prefix)
        ref.eval()
        with torch.no_grad():
            rep.compare('components', name,
                        F.normalize(ours.extract_feat(x, name), dim=1),
                        ref(x))
    assert rep.passed
    with torch.no_grad():
        ref.feat_bn.weight[:16].mul_(1.01)  # (a uniform scale would be
        # invisible after the L2 normalisation)
        rep.compare('components', 'perturbed',
                    F.normalize(ours.extract_feat(x, 'momentum'), dim=1),
                    ref(x))
    assert not rep.levels['components']['perturbed']['pass']


def test_loss_comparators_with_our_losses_and_perturbed():
    cfg, _ = _code_model()
    g = torch.Generator().manual_seed(2)
    feats = F.normalize(torch.randn(16, 32, generator=g), dim=1)
    targets = torch.arange(16) // 4
    proxies = F.normalize(torch.randn(2, 7, 32, generator=g), dim=2)
    inst = F.normalize(torch.randn(7, 4, 32, generator=g), dim=2)
    rep = ParityReport('dcmip')
    for key, bank in (('loss_dcp', proxies), ('loss_mip', inst)):
        a = MODELS.build(cfg.model[key])
        b = copy.deepcopy(a)
        rep.compare('components', key, a(feats, bank, targets),
                    b(feats, bank, targets))
    assert rep.passed
    perturbed = MODELS.build(dict(cfg.model.loss_mip, negative_mode='global'))
    rep.compare('components', 'perturbed L_MIP',
                MODELS.build(cfg.model.loss_mip)(feats, inst, targets),
                perturbed(feats, inst, targets))
    perturbed = MODELS.build(dict(cfg.model.loss_dcp, mode='mean'))
    rep.compare('components', 'perturbed L_DCP',
                MODELS.build(cfg.model.loss_dcp)(feats, proxies, targets),
                perturbed(feats, proxies, targets))
    assert not rep.levels['components']['perturbed L_MIP']['pass']
    assert not rep.levels['components']['perturbed L_DCP']['pass']


def test_switches_are_the_code_config():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, dcmip.CONFIG))
    for key, (value, _) in dcmip.SWITCHES.items():
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert (tuple(node) if isinstance(node, (list, tuple)) else
                node) == value, key


def test_run_knows_dcmip(tmp_path):
    from parity import run
    assert run.METHODS['dcmip'][0] == 'parity.dcmip'
    with pytest.raises(SystemExit, match='not a folder'):
        run.main(['dcmip', '--reference', str(tmp_path / 'no')])


# ----------------------------------------------------------------------
# the shared row helpers the DCMIP levels use (common.py)
def _reference_pair(ours, maps):
    refs = {name: _OpenReIDStyle() for name in dcmip.PREFIX}
    common.reset_weights(ours, copy.deepcopy(ours.state_dict()), refs, maps,
                         dcmip.PREFIX)
    return refs


def test_ema_step_rows_with_the_reference_formula_and_perturbed():
    _, ours = _code_model()
    maps = dcmip.maps_for(ours)
    initial = copy.deepcopy(ours.state_dict())
    for alpha, passes in ((0.999, True), (0.99, False)):
        ours.load_state_dict(initial)
        refs = _reference_pair(ours, maps)

        def ema_step():
            # the reference's _update_ema_variables: every parameter
            with torch.no_grad():
                for m, s in zip(refs['momentum'].parameters(),
                                refs['student'].parameters()):
                    m.mul_(alpha).add_(s, alpha=1 - alpha)

        rep = ParityReport('dcmip')
        common.compare_ema_step(rep, ours, refs['student'],
                                refs['momentum'], maps, dcmip.PREFIX, 1,
                                ema_step, f'alpha {alpha}')
        rows = rep.levels['components']
        assert list(rows) == [
            'EMA step: momentum parameters',
            'EMA step: change of the momentum parameters',
            'EMA step leaves the momentum BN buffers unchanged'
        ]
        assert rows['EMA step: momentum parameters']['note'].endswith(
            f'reference alpha {alpha}')
        assert rows['EMA step leaves the momentum BN buffers unchanged'][
            'pass']
        assert rep.passed is passes


def test_update_and_buffer_rows_and_perturbed():
    _, ours = _code_model()
    maps = dcmip.maps_for(ours)
    refs = _reference_pair(ours, maps)
    before = copy.deepcopy(ours.state_dict())
    with torch.no_grad():
        for p in ours.encoder.parameters():
            p.add_(1e-3)
        for p in refs['student'].parameters():
            p.add_(1e-3)
    rep = ParityReport('dcmip')
    sd_o, sd_r = ours.state_dict(), refs['student'].state_dict()
    common.compare_updates(rep, 'steps', 'updates', before, sd_o, sd_r,
                           maps['student'], 1e-8, ' (what)', '; suffix')
    common.compare_buffers(rep, 'steps', 'buffers', sd_o, sd_r,
                           maps['student'], 1e-8, 'note')
    rows = rep.levels['steps']
    assert rows['updates']['max_abs'] < 1e-6 and rep.passed
    assert rows['updates']['note'] == ('max_rel = ||Δours - Δref||₂ / '
                                       '||Δref||₂ (what); largest update '
                                       '0.001; suffix')
    with torch.no_grad():
        refs['student'].feat_bn.weight.add_(1e-3)
        refs['student'].feat_bn.running_var.add_(1e-3)
    sd_r = refs['student'].state_dict()
    common.compare_updates(rep, 'steps', 'perturbed updates', before, sd_o,
                           sd_r, maps['student'], 1e-3)
    common.compare_buffers(rep, 'steps', 'perturbed buffers', sd_o, sd_r,
                           maps['student'], 1e-4)
    assert not rows['perturbed updates']['pass']
    assert not rows['perturbed buffers']['pass']


def test_scoped_levels_undo_their_patches_and_report_failures():
    holder = type('Holder', (), {'value': 1})

    class Runtime:
        applied = []

        @contextlib.contextmanager
        def scoped(self):
            old = holder.value
            try:
                yield
            finally:
                holder.value = old

    seen = []

    def level(name, fail=False):
        holder.value = name
        Runtime.applied.append(f'shim of {name}')
        seen.append(name)
        if fail:
            raise RuntimeError('broken')

    rep = ParityReport('dcmip')
    args = argparse.Namespace(levels=['components', 'run'])
    common.run_scoped_levels(
        rep, args, Runtime(),
        dict(components=(level, 'components'), steps=(level, 'steps'),
             run=(level, 'run', True)))
    assert seen == ['components', 'run'] and holder.value == 1
    assert rep.shims == ['shim of components', 'shim of run']
    assert not rep.levels['run']['run level completed']['pass']
    common.timing_rows(rep, 'setting', 2.0, 4.0)
    assert rep.timing == {
        'ours': dict(s_per_iter=2.0, setting='setting'),
        'reference': dict(s_per_iter=4.0, setting='setting'),
        'ours / reference': dict(s_per_iter=0.5, setting='ratio')
    }
