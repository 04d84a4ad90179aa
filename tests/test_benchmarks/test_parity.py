# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The parity harness without a reference: its comparators, key maps,
DataParallel emulation, subset and report, with our own model on both
sides and with a deliberately perturbed copy (which must fail)."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'benchmarks'))

from parity import common  # noqa: E402
from parity.data import ReferenceDataset, make_subset  # noqa: E402
from parity.keymap import (check_key_map, copy_weights,  # noqa: E402
                           resnet_encoder_key_map, sub_state_dict)
from parity.report import (ParityReport, label_mismatches,  # noqa: E402
                           tensor_diff)
from parity.shims import CPUDataParallel, ReferenceRuntime  # noqa: E402

from mmreid_usl.models.utils.batch_shuffle import grouped_forward  # noqa


# ----------------------------------------------------------------------
# comparators
def test_tensor_diff_is_relative_to_the_reference_scale():
    ref = torch.tensor([0.0, 2.0, -4.0], dtype=torch.float64)
    d = tensor_diff(ref + torch.tensor([0.0, 0.0, 0.004],
                                       dtype=torch.float64), ref)
    assert d['max_abs'] == pytest.approx(0.004)
    assert d['max_rel'] == pytest.approx(0.001)
    assert tensor_diff(ref, ref) == dict(max_abs=0.0, max_rel=0.0)
    with pytest.raises(ValueError, match='shapes differ'):
        tensor_diff(ref, ref[:2])


def test_label_mismatches_up_to_permutation():
    ref = [0, 0, 1, 1, 2, -1]
    assert label_mismatches([5, 5, 3, 3, 0, -1], ref) == 0  # renamed
    assert label_mismatches([5, 5, 3, 5, 0, -1], ref) == 1  # one moved
    assert label_mismatches([5, 5, 3, 3, 0, 0], ref) == 1  # outlier joined
    assert label_mismatches([0, 0, 0, 0, 0, -1], ref) == 3  # merged


def test_report_json_and_failure(tmp_path):
    rep = ParityReport('toy', dict(device='cpu'))
    x = torch.randn(4, 3)
    rep.compare('components', 'same', x, x.clone())
    rep.compare_labels('components', 'labels', [1, 1, 0], [0, 0, 1])
    rep.deviation('d', "model.x='y'", 'loss', 1.5, 1.25, 'note')
    rep.timing['ours'] = dict(s_per_iter=1.0, setting='s')
    assert rep.passed
    rep.compare('steps', 'perturbed', x + 1e-3, x, 1e-5)
    assert not rep.passed and rep.level_passed('components')
    path = tmp_path / 'r.json'
    rep.dump(str(path))
    out = json.loads(path.read_text())
    assert out['pass'] is False
    entry = out['levels']['steps']['perturbed']
    assert set(entry) >= {'max_abs', 'max_rel', 'tol', 'pass'}
    assert entry['pass'] is False
    assert out['levels']['components']['same']['pass'] is True
    assert out['deviations'][0]['difference'] == pytest.approx(0.25)
    text = rep.tables()
    assert '| perturbed |' in text and '**NO**' in text
    with pytest.raises(KeyError, match='twice'):
        rep.compare('steps', 'perturbed', x, x)


# ----------------------------------------------------------------------
# key maps, with torchvision standing in for the reference network
class _OpenReIDStyle(nn.Module):
    """The layout of the reference ResNets (``base`` = conv1 .. layer4,
    ``gap`` with GeM's ``p``, ``feat_bn``), built from torchvision."""

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
        return self.feat_bn(x)


def _our_encoder():
    from mmreid_usl.models import ReIDEncoder
    torch.manual_seed(0)
    return ReIDEncoder(
        backbone=dict(
            type='mmpretrain.ResNet', depth=18, strides=(1, 2, 2, 1),
            out_indices=(3, )),
        pooling=dict(type='mmpretrain.GeneralizedMeanPooling', p=3.0),
        neck=dict(type='BNNeck'))


def test_key_map_is_a_bijection_and_copies_exactly():
    from mmreid_usl.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    ours = nn.Module()
    ours.encoder = _our_encoder()
    ref = _OpenReIDStyle()
    key_map = resnet_encoder_key_map(sub_state_dict(ours, 'encoder.'))
    assert check_key_map(
        sub_state_dict(ours, 'encoder.'), ref.state_dict(), key_map) == []
    copy_weights(ours, ref, key_map)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 32)
    rep = ParityReport('toy')
    with torch.no_grad():
        rep.compare('components', 'encoder', ours.encoder(x), ref(x))
    assert rep.passed
    # a deliberately perturbed copy must fail
    with torch.no_grad():
        ref.base[4][0].conv1.weight.add_(1e-2)
        rep.compare('components', 'perturbed', ours.encoder(x), ref(x))
    assert not rep.levels['components']['perturbed']['pass']


def test_key_map_problems_are_named():
    ours = {'a': torch.zeros(2), 'b': torch.zeros(3)}
    ref = {'x': torch.zeros(2), 'y': torch.zeros(4), 'z': torch.zeros(1)}
    problems = check_key_map(ours, ref, {'a': 'x', 'b': 'y'})
    assert any('shape b' in p for p in problems)
    assert any('not covered' in p and "'z'" in p for p in problems)
    problems = check_key_map(ours, ref, {'a': 'x', 'b': 'x'})
    assert any('mapped twice' in p for p in problems)
    with pytest.raises(KeyError, match='unexpected encoder key'):
        resnet_encoder_key_map(['encoder.head.fc.weight'])


# ----------------------------------------------------------------------
# DataParallel emulation = our 'first_group' BN groups
def test_cpu_data_parallel_equals_first_group_forward():
    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()

    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))
    dp, ours = CPUDataParallel(net(), 4), net()
    out_dp = dp(x)
    out_ours = grouped_forward(ours, x, 4, 'first_group')
    assert torch.allclose(out_dp, out_ours)
    assert torch.equal(dp.module[1].running_mean, ours[1].running_mean)
    out_dp.sum().backward()
    assert dp.module[0].weight.grad is not None


def test_reference_runtime_restores_everything(tmp_path):
    with pytest.raises(FileNotFoundError, match='reference package'):
        ReferenceRuntime(str(tmp_path), 'clustercontrast')
    (tmp_path / 'refpkg').mkdir()
    (tmp_path / 'refpkg' / '__init__.py').write_text('VALUE = 7\n')
    cuda, dp = torch.Tensor.cuda, nn.DataParallel
    with ReferenceRuntime(str(tmp_path), 'refpkg', 'cpu', 2) as rt:
        assert rt.import_module('refpkg').VALUE == 7
        assert torch.ones(1).cuda().device.type == 'cpu'
        assert isinstance(nn.DataParallel(nn.Linear(1, 1)), CPUDataParallel)
        out = torch.zeros(2, 2).addmm_(1, -2, torch.ones(2, 1),
                                       torch.ones(1, 2))
        assert torch.equal(out, torch.full((2, 2), -2.0))
        assert rt.applied
    assert torch.Tensor.cuda is cuda and nn.DataParallel is dp
    assert str(tmp_path) not in sys.path


# ----------------------------------------------------------------------
# the subset, our steps helpers
def test_subset_and_reference_lists(tmp_path):
    src = osp.join(REPO, 'tests', 'data', 'Market-1501-v15.09.15')
    sizes = make_subset(src, str(tmp_path / 's'), num_train=5, num_test=4,
                        cameras=(1, 2, 3, 4, 5, 6))
    assert sizes['train'] >= 5 and sizes['query'] > 0
    data = ReferenceDataset(str(tmp_path / 's'))
    assert len(data.train) == sizes['train']
    assert [f for f, _, _ in data.train] == sorted(f for f, _, _ in
                                                   data.train)
    assert {p for _, p, _ in data.train} == set(range(data.num_train_pids))
    assert all(osp.exists(f) for f, _, _ in data.train + data.query)
    with pytest.raises(FileNotFoundError, match='Market-layout'):
        make_subset(str(tmp_path), str(tmp_path / 't'))


def test_pk_batches_and_update_diff():
    labels = np.array([0, 0, 1, 1, 1, -1, 2, 2])
    a = common.pk_batches(labels, 2, 2, 3, seed=0)
    assert a == common.pk_batches(labels, 2, 2, 3, seed=0)
    for batch in a:
        assert len(batch) == 4 and 5 not in batch  # outlier skipped
        assert len({labels[i] for i in batch}) == 2
    before = {'w': torch.zeros(3)}
    same = common.update_diff(before, {'w': torch.ones(3)},
                              {'r': torch.ones(3)}, {'w': 'r'})
    assert same['rel_l2'] == 0 and same['max_update'] == 1
    off = common.update_diff(before, {'w': torch.tensor([1., 1., -1.])},
                             {'r': torch.ones(3)}, {'w': 'r'})
    assert off['max_abs'] == 2 and off['rel_l2'] == pytest.approx(
        2 / 3**0.5)


def test_run_refuses_a_path_without_the_reference(tmp_path, capsys):
    from parity import run
    with pytest.raises(SystemExit, match='not a folder'):
        run.main(['cluster_contrast', '--reference', str(tmp_path / 'no')])


def test_run_scale_resizes_every_pipeline_of_the_config():
    """``--run-scale``: every Resize and crop of the config, the reference
    bank's and the three views' included, at the fraction asked for; the
    default levels are the three compared ones."""
    from parity import run
    full = common.load_config('configs/dcmip/dcmip_r50-code_market.py', {})
    half = common.load_config('configs/dcmip/dcmip_r50-code_market.py', {},
                              None, 0.5)

    def sizes(node, out):
        if isinstance(node, dict):
            if node.get('type') == 'Resize':
                out.append(('scale', tuple(node['scale'])))
            if 'crop_size' in node:
                out.append(('crop_size', tuple(node['crop_size'])))
            for v in node.values():
                sizes(v, out)
        elif isinstance(node, (list, tuple)):
            for v in node:
                sizes(v, out)
        return out

    before, after = sizes(full._cfg_dict, []), sizes(half._cfg_dict, [])
    assert ('scale', (128, 320)) in before and len(before) == len(after)
    assert after == [(k, common.scaled_size(v, 0.5)) for k, v in before]
    assert ('scale', (64, 160)) in after
    args = run.parse_args(['ice', '--reference', '.'])
    assert args.levels == ['components', 'steps', 'run']
    assert (args.run_scale, args.run_images) == (0.5, 300)  # three views
    assert args.step_scale == 0.5
    assert run.parse_args(['theory', '--reference', '.']).step_scale == 1
    assert common.with_image_scale(full, 1)._cfg_dict == full._cfg_dict
    assert sizes(common.with_image_scale(full, 0.5)._cfg_dict, []) == after
    args = run.parse_args(['dcmip', '--reference', '.', '--run-images', '9'])
    assert run.parse_args(['dcmip', '--reference', '.']).run_images == 500
    assert args.run_images == 9
    # DCMIP: steps at half resolution, 100 test images in the run, and the
    # run's rounding floor measured; the others keep --num-test, no floor
    assert (args.step_scale, args.run_test, args.run_floor) == (0.5, 100,
                                                                True)
    args = run.parse_args(['theory', '--reference', '.', '--num-test', '50'])
    assert (args.run_test, args.run_floor) == (50, False)
    args = run.parse_args(
        ['dcmip', '--reference', '.', '--no-run-floor', '--run-test', '7'])
    assert (args.run_test, args.run_floor) == (7, False)


def test_rounding_floor_perturbs_parameters_by_ulps(tmp_path):
    """``--run-floor``: the perturbed initial weights are float64, move
    every parameter by ~1e-15 relative and no BN buffer; the floor is the
    relative difference of the updates and of the BN statistics."""
    from parity.short_run import perturbed_initial, rounding_floor
    torch.manual_seed(0)
    state = {'conv.weight': torch.randn(8, 4), 'bn.running_var':
             torch.rand(4) + 1, 'bn.num_batches_tracked': torch.tensor(3)}
    src = str(tmp_path / 'init.pth')
    torch.save({'state_dict': state, 'meta': {'x': 1}}, src)
    out = torch.load(
        perturbed_initial(src, str(tmp_path / 'p.pth')), weights_only=True)
    w, w0 = out['state_dict']['conv.weight'], state['conv.weight'].double()
    assert w.dtype == torch.float64 and out['meta'] == {'x': 1}
    rel = ((w - w0) / w0).abs()
    assert 0 < rel.max() < 1e-14 and (rel > 0).float().mean() > 0.9
    assert torch.equal(out['state_dict']['bn.running_var'],
                       state['bn.running_var'].double())
    assert out['state_dict']['bn.num_batches_tracked'] == 3
    before = {'conv.weight': torch.zeros(2), 'bn.running_var': torch.ones(2)}
    ours = {'conv.weight': torch.tensor([3., 4.]),
            'bn.running_var': torch.tensor([2., 4.])}
    floor = {'conv.weight': torch.tensor([3., 4.5]),
             'bn.running_var': torch.tensor([2., 3.])}
    got = rounding_floor(before, ours, floor, {k: k for k in before})
    assert got['updates'] == pytest.approx(0.5 / 5)
    assert got['bn_stats'] == pytest.approx(1 / 4)
