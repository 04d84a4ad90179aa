# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity of DCMIP with the unofficial re-implementation Trangle12/DCMIP.

Our side is ``configs/dcmip/dcmip_r50-code_market.py`` (the config that
mirrors that code: its switches are listed in :data:`SWITCHES`); the
reference is the user's clone, driven through its own modules
(``clustercontrast.models.cm.ClusterMemory`` in the ``CMhybrid`` and
``CMhard`` modes, ``clustercontrast.trainers.ClusterContrastTrainer`` and
``ClusterContrastTrainer_PCLMP``, its Jaccard distance and evaluator) and,
for the short run, its own training script
(``examples/cluster_contrast_train_usl.py``: ``main_worker_stage1`` then
``main_worker_stage2``).

Three things are fixed by the harness, at run time only:

- The cluster-proxy update branch. The reference's ``CM_Hybrid.backward``
  holds two branches, labelled ``#Market1501`` (commented out) and
  ``#MSMT17`` (the one its committed code runs for every dataset). The
  ``-code`` config mirrors ``#Market1501``. :func:`market1501_cm` compiles
  the reference's own ``cm.py`` with the comment markers of the two branches
  swapped (a text transform of the file as read, checked to touch exactly
  those lines; nothing is written to disk) and the steps and run levels use
  its ``cm_hybrid``; the components level compares both branches (ours
  ``update_modes=('momentum', 'mean')`` against the committed code).
- The instance-proxy draws. The reference writes the batch's features into
  the instance proxies in the order of ``np.random.choice`` (``CM_Hard``),
  and fills them at re-clustering with ``np.random.choice`` of the members
  (``generate_random_features``). Both draws are REPLAYED from ours: the
  ``np`` the reference module sees returns our slot order (slot ``k`` of a
  cluster takes its ``k mod n``-th batch instance) and our member draws
  (``InstanceProxyMemory.draw_members``, seed + epoch). The losses only see
  the set of slots of a cluster, so for ``n = K`` any permutation gives the
  same loss; the replay makes the memories equal element by element.
- BatchNorm of the DataParallel forwards: 4 emulated replicas (contiguous
  chunks, the buffers of the first one kept), for the online and the EMA
  model, as ``model.bn_running_stats='first_group'`` and
  ``model.momentum_shuffle_bn=False`` do on our side.

The reference trains with ``torch.cuda.amp`` (autocast + GradScaler): both
are disabled on a CPU (no-op), which the report notes.
"""
import argparse
import contextlib
import copy
import functools
import os
import os.path as osp
import sys
import types
from argparse import Namespace
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance
from mmreid_usl.evaluation.functional import evaluate_rank
from mmreid_usl.models.memories import InstanceProxyMemory
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from . import common
from .keymap import copy_weights, resnet_encoder_key_map, sub_state_dict
from .report import ParityReport
from .shims import CPUDataParallel, ReferenceRuntime, load_module_from_file

CONFIG = 'configs/dcmip/dcmip_r50-code_market.py'
#: The paper's recipe, whose deviations from the reference are measured.
DEFAULT_CONFIG = 'configs/dcmip/dcmip_r50_market.py'
#: The switches of the ``-code`` config that select the reference's
#: behaviour (set by the config itself; listed in the report), with why.
SWITCHES = {
    'model.dcp_memory.update_modes': (
        ('hard', 'mean'),
        'the #Market1501 branch of CM_Hybrid.backward (the committed code '
        "runs #MSMT17 = ('momentum', 'mean'), compared at the components "
        'level)'),
    'model.loss_dcp.mode': ('hybrid', '0.5 (CE(proxy 2) + relu(CE(proxy 1) '
                            '- 0.2))'),
    'model.loss_mip.negative_mode': (
        'per_cluster', 'the most similar proxy of every other cluster'),
    'model.dcp_weight': (1.0, 'loss_cc + loss_ema'),
    'model.mip_weight': (1.0, 'loss_cc + loss_ema'),
    'model.mip_update_encoder': (
        'student', 'the online features replace the instance proxies'),
    'model.momentum_reinit': (
        'until_mip', 'EMA copied from the student when stage 2 starts, '
        'then continuous'),
    'model.momentum_shuffle_bn': (
        False, 'DataParallel EMA forward: contiguous chunks, no shuffle'),
    'model.bn_running_stats': (
        'first_group', 'running statistics of the first DataParallel '
        'replica only (online and EMA forwards)'),
}
#: Images per BN group in the harness (4 emulated replicas; the official
#: 4 GPUs x 64 need a batch of 256).
BN_GROUP = 8
NUM_REPLICAS = 4
#: P x K of the components and steps levels, and the instance proxies per
#: cluster there (K = 16 in the config: 16 images of a cluster per batch).
NUM_IDS, NUM_INSTANCES = 8, 4
HEIGHT, WIDTH = 320, 128
TRAIN_SCRIPT = 'examples/cluster_contrast_train_usl.py'
PREFIX = {'student': 'encoder.', 'momentum': 'momentum_encoder.module.'}
#: The (0-based) epoch our steps level is in: stage 2 (instance proxies on).
STAGE2_EPOCH = 40
MARKET_SHIM = ('cm.CM_Hybrid.backward: the #Market1501 branch (its '
               'commented-out lines) enabled and the #MSMT17 loop commented '
               'out, by compiling the reference\'s cm.py with the comment '
               'markers of those 6 lines swapped at run time (the '
               "-code config's update_modes=('hard', 'mean'))")
#: Our loss terms, in the order of the reference's (``ClusterMemory`` of
#: ``encoder``, of ``encoder_ema``).
TERMS = ('loss_dcp', 'loss_mip')
REPLAY_SHIM = ('np.random.choice of cm.CM_Hard.backward -> our slot order '
               '(slot k of a cluster <- its (k mod n)-th batch instance)')


def _switch_values(extra: Dict[str, object] = None) -> Dict[str, object]:
    """Harness settings on top of the ``-code`` config."""
    values = {
        'model.bn_group_size': BN_GROUP,
        'model.momentum_bn_group_size': BN_GROUP,
        'model.instance_memory.num_instances': NUM_INSTANCES,
    }
    values.update(extra or {})
    return values


def _key_maps(ours: nn.Module) -> Dict[str, Dict[str, str]]:
    """Our student / momentum encoder -> the reference ``model`` /
    ``model_ema`` (GeM ``gap.p``, BNNeck ``feat_bn``)."""
    return {
        name: resnet_encoder_key_map(
            sub_state_dict(ours, prefix).keys(), ours_prefix=prefix)
        for name, prefix in PREFIX.items()
    }


def _ref_net(models_mod, ours, maps, which: str) -> nn.Module:
    """``models.create`` as ``create_model_stage1/2`` call it (ResNet-50,
    no embedding, norm=True, GeM), carrying our ``which`` encoder."""
    net = models_mod.create(
        'resnet50', num_features=0, norm=True, dropout=0, num_classes=0,
        pooling_type='gem')
    copy_weights(ours, net, maps[which], PREFIX[which])
    return net


def run(args: argparse.Namespace, report: ParityReport) -> None:
    """All levels of the DCMIP parity run."""
    work, subset, cfg, ours = common.prepare_run(args, report, CONFIG,
                                                 _switch_values(),
                                                 'parity_dcmip_')
    report.switches.update({k: v for k, (v, _) in SWITCHES.items()})
    report.switches.update({
        k: v for k, v in _switch_values().items()})
    report.notes.append(
        f'BN groups of {BN_GROUP} images = {NUM_REPLICAS} emulated '
        'DataParallel replicas (the official 4 GPUs x 64 need a batch of '
        '256); instance proxies K = '
        f'{NUM_INSTANCES} with P x K = {NUM_IDS} x {NUM_INSTANCES} batches '
        '(the config: K = 16 with 16 x 16).')
    report.notes.append(
        'The reference trains under torch.cuda.amp (autocast + GradScaler); '
        'on a CPU both are disabled (no-op): its float32 (float64) '
        'arithmetic is compared.')
    maps = _key_maps(ours)
    with ReferenceRuntime(args.reference, 'clustercontrast', args.device,
                          NUM_REPLICAS) as rt:
        _stub_tqdm(rt)
        models_mod = rt.import_module('clustercontrast.models')
        rt.torchvision_without_download(
            rt.import_module('clustercontrast.models.resnet'))
        ref_s = _ref_net(models_mod, ours, maps, 'student')
        ref_m = _ref_net(models_mod, ours, maps, 'momentum')
        common.check_encoder_key_maps(
            report, ours, {
                'student': (ref_s, 'model'),
                'momentum': (ref_m, 'model_ema')
            }, maps, PREFIX)
        # the seeded model's features of the subset, for the components'
        # clustering and the steps' labels (extracted once)
        feats = common.SubsetFeatures(cfg, args.seed)
        common.run_scoped_levels(
            report, args, rt,
            dict(
                components=(_components, args, report, rt, cfg, ours, ref_s,
                            ref_m, maps, subset, feats),
                steps=(_steps, args, report, rt, cfg, maps, feats),
                run=(_short_run, args, report, rt, maps, work),
                timing=(_timing, args, report, rt, maps)))


def _stub_tqdm(rt) -> None:
    """A ``tqdm`` module whose ``tqdm(iterable)`` is the iterable, when
    tqdm is not installed (the reference imports it for progress bars of
    its evaluator only)."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        stub = types.ModuleType('tqdm')
        stub.tqdm = lambda iterable=None, *a, **k: iterable
        rt.patch_item(sys.modules, 'tqdm', stub,
                      'stub module `tqdm` (progress bars of its evaluator; '
                      'not installed here): tqdm(it) = it')


def _note(rt, why: str) -> None:
    if why not in rt.applied:
        rt.applied.append(why)


# ----------------------------------------------------------------------
# the reference's code, loaded and transformed at run time
_SCRIPT: Dict[str, Any] = {}


def _script(rt):
    """The reference training script as a module (its main block not run;
    its import-time ``os.chdir(sys.path[0])`` and ``sys.path.append('../')``
    undone)."""
    if 'dcmip' not in _SCRIPT:
        cwd, path = os.getcwd(), list(sys.path)
        try:
            _SCRIPT['dcmip'] = load_module_from_file(
                'dcmip_train_usl', osp.join(rt.path, TRAIN_SCRIPT))
        finally:
            os.chdir(cwd)
            sys.path[:] = path
    _note(rt, "the training script's import-time `os.chdir(sys.path[0])` "
          "and `sys.path.append('../')` undone after loading it")
    return _SCRIPT['dcmip']


def market1501_source(src: str) -> str:
    """``cm.py`` with the ``#Market1501`` branch of ``CM_Hybrid.backward``
    enabled and the ``#MSMT17`` one commented out.

    The lines after the ``#Market1501`` marker that are comments (up to the
    blank line) lose their ``# ``; the lines after the ``#MSMT17`` marker
    (up to the blank line) get one. Nothing else changes.

    Raises:
        ValueError: If the markers or the expected 3 + 3 lines are not
            found (the reference changed).
    """
    lines = src.split('\n')
    out, state, enabled, disabled = [], None, 0, 0
    for line in lines:
        s = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        if s == '#Market1501':
            state = 'market'
        elif s == '#MSMT17':
            state = 'msmt'
        elif s == '':
            state = None if state == 'msmt' else state
        elif state == 'market':
            if s.startswith('# '):
                line = indent + s[2:]
                enabled += 1
            else:
                state = None
        elif state == 'msmt':
            line = indent + '# ' + s
            disabled += 1
        out.append(line)
    if (enabled, disabled) != (3, 3):
        raise ValueError(
            'cm.py: expected 3 commented #Market1501 lines and 3 #MSMT17 '
            f'lines in CM_Hybrid.backward, found {enabled} and {disabled}: '
            'the reference changed')
    return '\n'.join(out)


_MARKET: Dict[str, types.ModuleType] = {}


def market1501_cm(rt) -> types.ModuleType:
    """The reference's ``cm.py`` compiled with :func:`market1501_source`
    (a module of its own; the imported ``clustercontrast.models.cm`` is
    left as it is)."""
    if rt.path not in _MARKET:
        path = osp.join(rt.path, 'clustercontrast', 'models', 'cm.py')
        with open(path, encoding='utf-8') as f:
            src = market1501_source(f.read())
        mod = types.ModuleType('clustercontrast.models.cm_market1501')
        mod.__file__ = path
        exec(compile(src, path, 'exec'), mod.__dict__)
        _MARKET[rt.path] = mod
    return _MARKET[rt.path]


def use_market1501(rt, cm) -> None:
    """``cm.cm_hybrid`` (what ``ClusterMemory.forward`` calls) -> the one
    of :func:`market1501_cm`, until the scope ends."""
    rt.patch(cm, 'cm_hybrid', market1501_cm(rt).cm_hybrid, MARKET_SHIM)


class ReplayChoice:
    """``np.random.choice`` for the reference: ``choice(n, size, replace)``
    (``CM_Hard.backward``, an int population) returns our slot order
    ``arange(size) % n``; ``choice(members, size, replace)``
    (``generate_random_features``, an array of sample indices) returns our
    draw of that cluster (``members_of[frozenset(members)]``)."""

    def __init__(self) -> None:
        self.members_of: Dict[frozenset, np.ndarray] = {}
        self.slot_calls = 0
        self.member_calls = 0

    def __call__(self, a, size=None, replace=True, p=None):
        if isinstance(a, (int, np.integer)):
            self.slot_calls += 1
            return np.arange(size) % int(a)
        key = frozenset(np.asarray(a).tolist())
        if key not in self.members_of:
            raise KeyError(f'no draw of ours for the cluster of {len(key)} '
                           'members: the clusterings differ')
        draw = self.members_of[key]
        if len(draw) != size:
            raise ValueError(f'{len(draw)} draws of ours, {size} asked')
        self.member_calls += 1
        return draw.copy()

    def numpy(self) -> types.ModuleType:
        """A numpy namespace whose ``random.choice`` is this replay."""
        rnd = types.ModuleType('numpy_random_replay')
        rnd.__dict__.update({k: v for k, v in vars(np.random).items()
                             if not k.startswith('__')})
        rnd.choice = self
        ns = types.ModuleType('numpy_replay')
        ns.__dict__.update({k: v for k, v in vars(np).items()
                            if not k.startswith('__')})
        ns.random = rnd
        return ns

    def add_draws(self, labels: torch.Tensor, draws: torch.Tensor) -> None:
        """Our ``(C, K)`` member draws of contiguous ``labels``."""
        lab = labels.cpu().numpy()
        for c, row in enumerate(draws.cpu().numpy()):
            self.members_of[frozenset(np.flatnonzero(lab == c).tolist())] = \
                row.astype(np.int64)


def _slot_layout(feats: torch.Tensor) -> torch.Tensor:
    """Our ``(C, K, D)`` instance proxies in the reference's ``(K * C, D)``
    ``features_ema`` layout (row ``c + C * k``)."""
    c, k, d = feats.shape
    return feats.transpose(0, 1).reshape(k * c, d)


# ----------------------------------------------------------------------
# components
def _ref_inputs(rt, dataset, indices):
    """The reference's test-pipeline tensors of ``indices`` (320x128)."""
    loader = _script(rt).get_test_loader(
        dataset, HEIGHT, WIDTH, len(indices), 0,
        testset=[dataset.train[i] for i in indices])
    return next(iter(loader))[0]


def _reset(ours, initial, ref_s, ref_m, maps) -> None:
    common.reset_weights(ours, initial, {
        'student': ref_s,
        'momentum': ref_m
    }, maps, PREFIX)


def _components(args, report, rt, cfg, ours, ref_s, ref_m, maps, subset,
                subset_feats: common.SubsetFeatures) -> None:
    from . import cluster_contrast as cc
    lv = 'components'
    n = args.component_batch
    initial = copy.deepcopy(ours.state_dict())
    # -- inputs: our pipeline + data preprocessor vs torchvision's, 320x128
    train_set, x = common.compare_input_tensors(
        report, ours, cfg, subset, n, functools.partial(_ref_inputs, rt),
        f'input tensors (test pipeline {HEIGHT}x{WIDTH}, decode + resize + '
        'normalise)', 'our -code pipeline (cv2 decode, PIL bicubic resize) '
        'vs PIL decode + torchvision Resize(interpolation=3)')
    # -- eval mode (the reference normalises its eval output)
    common.compare_eval_outputs(report, ours, ref_s, ref_m, x, 'GeM')
    # -- train mode: 4 BN groups of 8 = 4 DataParallel replicas
    ours.train()
    dp_s, dp_m = nn.DataParallel(ref_s), nn.DataParallel(ref_m)
    dp_s.train()
    dp_m.train()
    raw_o = ours.student_forward(x)
    out_r = dp_s(x)
    report.compare(
        lv, f'student output (train, {NUM_REPLICAS} BN groups of '
        f'{n // NUM_REPLICAS}, L2-normalised)', F.normalize(raw_o, dim=1),
        out_r, 1e-5)
    with torch.no_grad():
        k_o = ours.momentum_forward(x)
        k_r = dp_m(x)
    report.compare(
        lv, 'momentum output (train, contiguous BN chunks, no shuffle, '
        'L2-normalised)', F.normalize(k_o, dim=1), k_r, 1e-5,
        "ours momentum_shuffle_bn=False; model_ema under DataParallel")
    sd_o = ours.state_dict()
    for name, ref in (('student', ref_s), ('momentum', ref_m)):
        common.compare_buffers(
            report, lv, f'{name} BN running statistics after one train '
            'forward', sd_o, ref.state_dict(), maps[name], 1e-5,
            "every running_mean / running_var; ours with "
            "bn_running_stats='first_group'")
    feats_o, feats_r = raw_o.detach(), out_r.detach()
    k_default = _shuffled_momentum(ours, initial, x)
    _reset(ours, initial, ref_s, ref_m, maps)
    _ema(args, report, rt, ours, ref_s, ref_m, maps)
    _reset(ours, initial, ref_s, ref_m, maps)
    _memories_and_losses(args, report, rt, cfg, ours, feats_o, feats_r,
                         F.normalize(k_o, dim=1), k_default)
    # -- clustering (student eval features of the subset at 320x128) and
    #    evaluation: the reference's modules are Cluster Contrast's
    cc._clustering(args, report, rt, subset_feats())
    cc._evaluation(report, rt, cfg, ours)
    _bn_deviation(report, ours, x, initial)
    _reset(ours, initial, ref_s, ref_m, maps)


def _shuffled_momentum(ours, initial, x) -> torch.Tensor:
    """Our default momentum forward (ShuffleBN) of ``x`` from the initial
    weights, L2-normalised (for the deviation table)."""
    ours.load_state_dict(initial)
    ours.momentum_shuffle_bn = True
    common.seed_all(0)
    try:
        with torch.no_grad():
            return F.normalize(ours.momentum_forward(x), dim=1)
    finally:
        ours.momentum_shuffle_bn = False
        ours.load_state_dict(initial)


def _ema(args, report, rt, ours, ref_s, ref_m, maps) -> None:
    """One EMA step from a student that differs from the momentum
    encoder: our ``momentum_update`` vs the reference trainer's
    ``_update_ema_variables(encoder, encoder_ema, 0.999)``."""
    trainers = rt.import_module('clustercontrast.trainers')

    def ref_step() -> None:
        trainer = trainers.ClusterContrastTrainer_PCLMP(
            nn.DataParallel(ref_s), nn.DataParallel(ref_m))
        trainer._update_ema_variables(trainer.encoder, trainer.encoder_ema,
                                      0.999)

    common.compare_ema_step(
        report, ours, ref_s, ref_m, maps, PREFIX, args.seed + 1, ref_step,
        'alpha 0.999; every parameter, GeM p and the frozen BNNeck bias '
        'included')


def _synthetic_bank(feats: torch.Tensor, seed: int) -> Tuple[torch.Tensor,
                                                             torch.Tensor]:
    """The batch's features (P x K clusters) plus 10 synthetic clusters of
    4, as a labelled bank (clusters the batch does not hold give the
    losses negatives that no batch instance updates)."""
    n, dim = feats.shape
    labels_b = torch.arange(n) // NUM_INSTANCES
    g = torch.Generator().manual_seed(seed + 2)
    extra = 40
    bank = torch.cat([
        F.normalize(feats, dim=1),
        F.normalize(torch.randn(extra, dim, generator=g), dim=1)
    ])
    labels = torch.cat([labels_b,
                        int(labels_b.max()) + 1 + torch.arange(extra) // 4])
    return bank, labels


def _memories_and_losses(args, report, rt, cfg, ours, feats_o, feats_r,
                         keys, keys_default) -> None:
    """Both memories' initialisation from the same labels and features,
    every loss term's value and gradient, and the memories after one
    update from the same batch (stage 1: ``CMhybrid``; stage 2:
    ``CMhard``)."""
    lv = 'components'
    cm = rt.import_module('clustercontrast.models.cm')
    n, dim = feats_o.shape
    k = NUM_INSTANCES
    labels_b = torch.arange(n) // k
    bank, labels = _synthetic_bank(feats_r, args.seed)
    num = int(labels.max()) + 1
    result = PseudoLabelResult.from_labels(
        labels.numpy(), {'student': bank, 'momentum': bank},
        cluster_encoder='student', epoch=STAGE2_EPOCH)
    # -- initialisation
    dcp = copy.deepcopy(ours.dcp_memory)
    dcp.reset(result)
    centres = torch.stack([bank[labels == c].mean(0) for c in range(num)])
    ref_init = F.normalize(centres.repeat(2, 1), dim=1)
    report.compare(
        lv, 'cluster proxies (DCP) initialisation', dcp.features.reshape(
            -1, dim), ref_init, 1e-6,
        "harness expectation of main_worker_stage1/2: F.normalize("
        "generate_cluster_features(...).repeat(2, 1)); ours (2, C, D)")
    ins = copy.deepcopy(ours.instance_memory)
    ins.reset(result)
    draws = InstanceProxyMemory.draw_members(result.labels, num, k,
                                             ins.seed + STAGE2_EPOCH)
    index = np.zeros(num * k, dtype=np.int64)
    for c in range(num):
        index[[c + j * num for j in range(k)]] = draws[c].numpy()
    ref_ins = F.normalize(bank[index], dim=1)
    member_ok = bool((result.labels[draws] ==
                      torch.arange(num).unsqueeze(1)).all())
    report.compare(
        lv, 'instance proxies (MIP) initialisation',
        _slot_layout(ins.features), ref_ins, 1e-6,
        "harness expectation of main_worker_stage2's generate_random_"
        f'features with our member draws ({num} clusters x {k}); ours '
        '(C, K, D) in its (K C, D) layout (row c + C k); every draw a member '
        f'of its cluster: {member_ok}')
    # -- stage 1: CMhybrid memory, L_DCP only
    mem1 = cm.ClusterMemory(dim, num, temp=0.05, momentum=0.1,
                            mode='CMhybrid')
    mem1.features = ref_init.clone()
    q_r = feats_o.clone().requires_grad_(True)
    loss_r = mem1(q_r, labels_b)
    q_o = feats_o.clone().requires_grad_(True)
    loss_o = ours.loss_dcp(F.normalize(q_o, dim=1), dcp.features, labels_b)
    report.compare(lv, 'L_DCP value (stage 1, CMhybrid)', loss_o, loss_r,
                   1e-5, "ours loss_dcp mode='hybrid' on the (2, C, D) "
                   'proxies; the same formula as stage 2 (CMhard, encoder)')
    loss_o.backward()
    loss_r.backward()  # the committed #MSMT17 update happens here
    report.compare(lv, 'L_DCP gradient w.r.t. the raw feature (stage 1)',
                   q_o.grad, q_r.grad, 1e-5,
                   'both normalise the raw post-BNNeck feature first')
    normed = F.normalize(feats_o, dim=1)

    def compare_update(mem, branch: str, ref_features, note: str) -> None:
        mem.update(normed, labels_b)
        report.compare(lv, f'cluster proxies after one update, {branch}',
                       mem.features.reshape(-1, dim), ref_features, 1e-5,
                       note)

    committed = copy.deepcopy(dcp)
    for proxy, mode in zip(committed.proxies, ('momentum', 'mean')):
        proxy.update_mode = mode
    compare_update(
        committed, 'committed #MSMT17 branch', mem1.features,
        "ours update_modes=('momentum', 'mean') (sequential per image, "
        'batch mean) vs the reference as committed')
    # -- stage 2: CMhard memory, #Market1501 branch, replayed slot draws
    with rt.scoped():
        use_market1501(rt, cm)
        replay = ReplayChoice()
        rt.patch(cm, 'np', replay.numpy(), REPLAY_SHIM)
        mem2 = cm.ClusterMemory(dim, num, temp=0.05, momentum=0.1,
                                mode='CMhard', num_instances=k)
        mem2.features = ref_init.clone()
        mem2.features_ema = ref_ins.clone()
        q1 = feats_o.clone().requires_grad_(True)
        q2 = feats_o.clone().requires_grad_(True)
        loss_cc = mem2(q1, labels_b, model_name='encoder')
        loss_ema = mem2(q2, labels_b, model_name='encoder_ema')
        p1 = feats_o.clone().requires_grad_(True)
        p2 = feats_o.clone().requires_grad_(True)
        dcp_o = ours.loss_dcp(F.normalize(p1, dim=1), dcp.features, labels_b)
        mip_o = ours.loss_mip(F.normalize(p2, dim=1), ins.features, labels_b)
        report.compare(lv, 'L_DCP value (stage 2, CMhard encoder)', dcp_o,
                       loss_cc, 1e-5)
        report.compare(lv, 'L_MIP value (stage 2, CMhard encoder_ema)',
                       mip_o, loss_ema, 1e-5,
                       "ours negative_mode='per_cluster', hardness="
                       "'hardest': the least similar own proxy, the most "
                       'similar proxy of every other cluster')
        for t in (dcp_o, mip_o, loss_cc, loss_ema):
            t.backward()
        report.compare(lv, 'L_DCP gradient w.r.t. the raw feature (stage 2)',
                       p1.grad, q1.grad, 1e-5)
        report.compare(lv, 'L_MIP gradient w.r.t. the raw feature',
                       p2.grad, q2.grad, 1e-5)
        compare_update(
            dcp, '#Market1501 branch', mem2.features,
            "ours update_modes=('hard', 'mean') (-code) vs the reference's "
            'cm.py with that branch enabled at run time')
        ins_default = copy.deepcopy(ins)
        ins.update(normed, labels_b)
        report.compare(
            lv, 'instance proxies after one update (online features)',
            _slot_layout(ins.features), mem2.features_ema, 1e-5,
            "ours mip_update_encoder='student'; reference CM_Hard.backward "
            f'with the slot order replayed ({replay.slot_calls} draws)')
    # -- deviations of our default (the paper's recipe) on the same batch
    cfg_d = common.load_config(DEFAULT_CONFIG, {}, None)
    from mmreid_usl.registry import MODELS
    loss_dcp_d = MODELS.build(cfg_d.model.loss_dcp)
    loss_mip_d = MODELS.build(cfg_d.model.loss_mip)
    with torch.no_grad():
        q = F.normalize(feats_o, dim=1)
        dcp_d = float(loss_dcp_d(q, ref_init.view(2, num, dim), labels_b))
        mip_d = float(loss_mip_d(q, ins_default.features, labels_b))
    report.deviation(
        'L_DCP: mean of the two ClusterNCE terms (ours) vs the hybrid form',
        "model.loss_dcp.mode='hybrid'", 'L_DCP of one batch (fresh proxies)',
        dcp_d, float(loss_cc), '0.5 (CE(proxy 2) + relu(CE(proxy 1) - 0.2)) '
        'in the reference')
    report.deviation(
        'L_MIP negatives: global top-50 (ours) vs the hardest proxy of '
        'every other cluster', "model.loss_mip.negative_mode='per_cluster'",
        f'L_MIP of one batch ({num} clusters x {k} proxies)', mip_d,
        float(loss_ema), f'{num - 1} negatives in the reference, 50 ours')
    report.deviation(
        'loss weights 0.5 / 0.5 (ours) vs 1 / 1',
        'model.dcp_weight=1.0, model.mip_weight=1.0',
        'total loss of one batch (each side its own terms)',
        0.5 * dcp_d + 0.5 * mip_d, float(loss_cc) + float(loss_ema),
        'the weights of the reference trainer: loss_cc + loss_ema')
    ins_default.update(keys_default, labels_b)
    report.deviation(
        'instance proxies replaced by the momentum features (ours) vs the '
        'online ones', "model.mip_update_encoder='student'",
        'max |difference| of the instance proxies after one update',
        float((_slot_layout(ins_default.features) -
               mem2.features_ema).abs().max()), 0.0,
        'ours: the momentum encoder features of the batch; with the '
        'encoder just copied into it (the start of stage 2) they differ by '
        'the ShuffleBN grouping only (next row), later also by the EMA lag')
    report.deviation(
        'ShuffleBN of the momentum forward (ours) vs contiguous chunks',
        'model.momentum_shuffle_bn=False',
        'max |difference| of the L2-normalised momentum features (train '
        'mode, same weights)', float((keys_default - keys).abs().max()), 0.0,
        'BN statistics of other images; the EMA forward of the reference is '
        'DataParallel over the P x K batch in order')
    report.deviation(
        'cluster-proxy update branch: #Market1501 (ours, -code) vs the '
        'committed #MSMT17', "model.dcp_memory.update_modes=('momentum', "
        "'mean')", 'max |difference| of proxy 1 after one update',
        float((dcp.features[0] - committed.features[0]).abs().max()), 0.0,
        'both in our implementation; each matches its reference branch '
        '(rows above)')


def _bn_deviation(report, ours, x, initial) -> None:
    """Our default (every BN group moves the statistics) against the
    DataParallel behaviour, after one student train forward."""
    out = common.running_var_by_bn_mode(ours, x, initial, prefix='encoder.')
    ours.bn_running_stats = 'first_group'
    common.report_bn_deviation(
        report, out, 'every group moves the statistics (4 updates per '
        'forward instead of 1; online and momentum); changes eval features '
        'only')


# ----------------------------------------------------------------------
# training steps
def _recording_memory(mem) -> Dict[str, List[float]]:
    """Every value ``mem.forward`` returns, by ``model_name``."""
    store: Dict[str, List[float]] = {'encoder': [], 'encoder_ema': []}
    forward = mem.forward

    def wrapped(inputs, targets, model_name='encoder'):
        loss = forward(inputs, targets, model_name=model_name)
        store[model_name].append(float(loss))
        return loss

    mem.forward = wrapped
    return store


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _steps(args, report, rt, cfg, maps,
           subset_feats: common.SubsetFeatures) -> None:
    """N optimiser steps of stage 2 (L_DCP + L_MIP, memory updates, the
    EMA forward and update) from the same weights on the same batches."""
    from .cluster_contrast import _FixedLoader
    lv = 'steps'
    _, dtype = common.step_precision(args, rt)
    trainers = rt.import_module('clustercontrast.trainers')
    cm = rt.import_module('clustercontrast.models.cm')
    models_mod = rt.import_module('clustercontrast.models')
    use_market1501(rt, cm)
    replay = ReplayChoice()
    rt.patch(cm, 'np', replay.numpy(), REPLAY_SHIM)
    ours = common.build_model(cfg, args.seed)
    ref_s = _ref_net(models_mod, ours, maps, 'student')
    ref_m = _ref_net(models_mod, ours, maps, 'momentum')
    # the steps run on the images at --step-scale of the resolution; the
    # labels come from the full-resolution features
    train_set = common.build_dataset(
        common.with_image_scale(cfg, args.step_scale), 'train_dataloader',
        'cluster_dataloader')
    feats = subset_feats()
    labels = DBSCANClusterer(eps=args.eps, min_samples=4)(
        dist=JaccardDistance(k1=30, k2=6)(feats))
    common.to_precision(dtype, ours, ref_s, ref_m)
    bank = feats.to(dtype)
    result = PseudoLabelResult.from_labels(
        labels, {'student': bank, 'momentum': bank}, cluster_encoder='student',
        epoch=STAGE2_EPOCH)
    ours.set_pseudo_labels(result)
    num = result.num_clusters
    if num < NUM_IDS:
        raise RuntimeError(
            f'{num} clusters on the subset: too few for {NUM_IDS} '
            'identities per batch; raise --eps or --num-train.')
    report.check(lv, 'stage 2 is on (instance proxies filled, EMA copied)',
                 ours.mip_active and int(ours.mip_start) == STAGE2_EPOCH,
                 f'set_pseudo_labels at epoch {STAGE2_EPOCH} '
                 '(ins_start_epoch of -code)')
    batches = common.pk_batches(result.labels.numpy(), NUM_IDS,
                                NUM_INSTANCES, args.steps, args.seed)
    # the reference memory from ours (its construction: components and run)
    dim = bank.shape[1]
    mem_r = cm.ClusterMemory(dim, num, temp=0.05, momentum=0.1,
                             mode='CMhard', num_instances=NUM_INSTANCES)
    mem_r.features = ours.dcp_memory.features.reshape(-1, dim).clone()
    mem_r.features_ema = _slot_layout(ours.instance_memory.features).clone()
    before = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    inputs = [common.our_inputs(ours, train_set, b) for b in batches]
    # -- ours: train_step with the config's optimiser, then the EMA update
    #    of the MomentumUpdateHook
    terms_o: List[Dict[str, float]] = []

    def after_step(log: dict) -> None:
        ours.momentum_update()
        terms_o.append({t: float(log[t].detach()) for t in TERMS})

    _, norms_o, grads_o, _ = common.our_train_steps(cfg, ours, train_set,
                                                    batches, after_step)
    # -- reference: ClusterContrastTrainer_PCLMP, Adam with one group per
    #    tensor (main_worker_stage2)
    dp_s, dp_m = nn.DataParallel(ref_s), nn.DataParallel(ref_m)
    opt_r, norms_r, grads_r = common.reference_adam(dp_s, ref_s)
    store = _recording_memory(mem_r)
    trainer = trainers.ClusterContrastTrainer_PCLMP(dp_s, dp_m, mem_r)
    loader = _FixedLoader(inputs, [result.labels[b] for b in batches])
    # float64 default: the reference's torch.Tensor([momentum]) and friends
    with _default_dtype(dtype):
        trainer.train(0, loader, opt_r, print_freq=10**6,
                      train_iters=len(batches))
    terms_r = [dict(loss_dcp=a, loss_mip=b)
               for a, b in zip(store['encoder'], store['encoder_ema'])]
    tol1, tol_n = common.STEP_TOLS[args.step_precision]
    common.compare_steps(report, args, maps['student'], before, ours, ref_s,
                         [sum(t.values()) for t in terms_o],
                         [sum(t.values()) for t in terms_r], norms_o,
                         norms_r, grads_o, grads_r, lr=3.5e-4)
    for i, (a, b) in enumerate(zip(terms_o, terms_r)):
        report.compare(lv, f'loss terms L_DCP, L_MIP, step {i + 1}',
                       [a['loss_dcp'], a['loss_mip']],
                       [b['loss_dcp'], b['loss_mip']],
                       tol1 if i == 0 else tol_n,
                       'reference: ClusterMemory(encoder), '
                       '(encoder_ema)')
    n = len(batches)
    sd_o, sd_r = ours.state_dict(), ref_m.state_dict()
    common.compare_updates(
        report, lv, f'momentum encoder: parameter updates after {n} EMA '
        'steps', before, sd_o, sd_r, maps['momentum'], tol_n)
    common.compare_buffers(
        report, lv, f'momentum encoder: BN running statistics after {n} '
        'steps', sd_o, sd_r, maps['momentum'], tol_n,
        'one EMA forward per step, contiguous chunks')
    report.compare(
        lv, f'cluster proxies (DCP) after {n} steps',
        ours.dcp_memory.features.reshape(-1, dim), mem_r.features, tol_n,
        '#Market1501 branch on both sides')
    report.compare(
        lv, f'instance proxies (MIP) after {n} steps',
        _slot_layout(ours.instance_memory.features), mem_r.features_ema,
        tol_n, f'slot order replayed ({replay.slot_calls} draws)')
    report.notes.append(
        f'steps level in {args.step_precision}: {n} steps of stage 2 '
        f'(epoch {STAGE2_EPOCH} of -code: L_DCP + L_MIP, the EMA forward '
        f'and update) of {NUM_IDS * NUM_INSTANCES} images (P x K = '
        f'{NUM_IDS} x {NUM_INSTANCES}) of '
        f'{"x".join(map(str, common.scaled_size((HEIGHT, WIDTH), args.step_scale)))} '
        'images (--step-scale) over a clustering of the initial '
        f'student features ({num} clusters, K = {NUM_INSTANCES} instance '
        'proxies); inputs = our pipeline\'s tensors on both sides; the '
        'reference memory starts from ours (both constructions are '
        'compared at the components level); the BN rows without a prefix '
        'are the student\'s')


# ----------------------------------------------------------------------
# short run
def _short_run(args, report, rt, maps, work) -> None:
    """Ours (Runner, 2 epochs: stage 1 then stage 2) vs
    ``main_worker_stage1`` + ``main_worker_stage2`` of the reference's
    training script (one epoch each), on the run's own subset."""
    from .short_run import (FLOOR_FACTOR, FLOOR_PERTURBATION, Recorder,
                            call_reference_main, momentum_run_overrides,
                            our_map, patch_reference_run, perturbed_initial,
                            record_ours, record_reference_failure,
                            recording_classes, reference_loader_args,
                            replay_sampler, rounding_floor, run_size_note,
                            run_subset, save_initial, train_ours,
                            transforms_without_augmentation)
    lv = 'run'
    script = _script(rt)
    cm = rt.import_module('clustercontrast.models.cm')
    wide = args.run_precision == 'fp64'
    dtype = torch.float64 if wide else torch.float32
    batch, k = args.run_batch, NUM_INSTANCES
    subset = run_subset(args, work)
    overrides = momentum_run_overrides(args, batch, k, NUM_REPLICAS)
    overrides.update({
        'model.ins_start_epoch': 1,
        'model.instance_memory.num_instances': k,
        'custom_hooks': [dict(type='OptimizerResetHook', epochs=[1])],
        'param_scheduler': [
            dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True,
                 begin=0, end=1),
            dict(type='StepLR', step_size=20, gamma=0.1, by_epoch=True,
                 begin=1, end=2),
        ],
    })
    cfg = common.load_config(CONFIG, _switch_values(overrides), subset,
                             args.run_scale)
    init_ckpt = osp.join(work, 'init_dcmip.pth')
    init = save_initial(cfg, args.seed, init_ckpt)

    def memories(model) -> dict:
        ins = model.instance_memory
        return dict(
            dcp=model.dcp_memory.features.reshape(
                -1, model.dcp_memory.feat_dim).detach().clone(),
            ins=_slot_layout(ins.features).detach().clone()
            if ins.num_clusters else None)

    # -- ours
    with record_ours(type(init), Recorder(), memory_fn=memories) as ours_rec:
        ours = train_ours(cfg, osp.join(work, 'ours_run'), init_ckpt,
                          dtype=dtype)
    # -- ours again from the initial weights moved by a few ulps: how far
    #    rounding alone moves the trained encoders (--run-floor)
    floor_sd = None
    if args.run_floor:
        floor_sd = train_ours(
            cfg, osp.join(work, 'ours_floor'),
            perturbed_initial(init_ckpt, osp.join(work, 'init_floor.pth')),
            dtype=dtype).state_dict()
    # the mAP of the two sides is ranked by our evaluate_rank, in the run's
    # precision (float32 ranking ties distances that differ in the 8th
    # digit, which the two float64 runs' features do)
    rank_dtype = torch.float64 if wide else torch.float32
    ours_feats = {'student': {}, 'momentum': {}}
    ours_map = {src: our_map(ours, cfg, src, rank_dtype, ours_feats[src])
                for src in ('student', 'momentum')}
    # -- reference
    ref_rec = Recorder()
    created: List[nn.Module] = []

    def with_our_weights(net: nn.Module) -> None:
        # stage 1 builds model; stage 2 model and model_ema, then loads the
        # stage-1 checkpoint into both
        copy_weights(init, net, maps['student'], PREFIX['student'])
        created.append(net)

    replay = ReplayChoice()
    seed = cfg.model.instance_memory.get('seed', 0)
    for epoch, (rec, lab) in enumerate(zip(ours_rec.memory,
                                           ours_rec.labels)):
        if rec['ins'] is not None:
            lab = torch.as_tensor(lab)
            replay.add_draws(lab, InstanceProxyMemory.draw_members(
                lab, int(lab.max()) + 1, k, seed + epoch))

    class RecordingMemory(cm.ClusterMemory):

        def forward(self, inputs, targets, model_name='encoder'):
            if not getattr(self, '_seen', False):
                ref_rec.memory.append(dict(
                    dcp=self.features.detach().clone(),
                    ins=self.features_ema.detach().clone()
                    if self.cm_type == 'CMhard' else None))
                self._seen = True
            loss = super().forward(inputs, targets, model_name)
            if model_name == 'encoder':
                ref_rec.terms.append(dict(loss_dcp=float(loss)))
            else:
                ref_rec.terms[-1]['loss_mip'] = float(loss)
            return loss

    maps_r: List[float] = []
    RecordingDBSCAN, RecordingEvaluator = recording_classes(
        script, ref_rec, maps_r)
    # the reference's evaluation features, ranked below by the one ranking
    # function both sides share (its own mAP ranks float64 distances, ours
    # float32 ones: near-ties then order differently on the two sides)
    evals_r: List[dict] = []
    ev_mod = rt.import_module('clustercontrast.evaluators')
    pairwise = ev_mod.pairwise_distance

    def recording_pairwise(features, query=None, gallery=None):
        out = pairwise(features, query, gallery)
        if query is not None and gallery is not None:
            evals_r.append(dict(
                qf=torch.as_tensor(out[1]).clone(),
                gf=torch.as_tensor(out[2]).clone(),
                query=list(query), gallery=list(gallery)))
        return out

    recording = ('recording subclasses of ClusterMemory / DBSCAN / '
                 'Evaluator (values read, nothing changed)')
    # its last step ("Test with the best model") loads model_best_stage2
    # into `model`: a copy of model_ema's checkpoint when model_ema scored
    # at least as well, so the trained weights are read before that load
    trained: Dict[str, dict] = {}
    load_checkpoint = script.load_checkpoint

    def load_checkpoint_after_reading(fpath, *a, **kw):
        if 'model_best_stage2' in str(fpath) and len(created) >= 2:
            for name, net in (('student', created[-2]),
                              ('momentum', created[-1])):
                trained[name] = {k: v.detach().clone()
                                 for k, v in net.state_dict().items()}
        return load_checkpoint(fpath, *a, **kw)

    rt.patch(script, 'load_checkpoint', load_checkpoint_after_reading,
             'load_checkpoint of model_best_stage2 (its final test of the '
             'best model, which can be model_ema\'s weights loaded into '
             'model): the trained weights read just before it (nothing '
             'changed)')
    _, train_paths = patch_reference_run(rt, script, subset,
                                         with_our_weights)
    if wide:
        rt.cuda_shims(torch.float64)
    use_market1501(rt, cm)
    rt.patch(cm, 'np', replay.numpy(), REPLAY_SHIM)
    rt.patch(script, 'np', replay.numpy(),
             'np.random.choice of generate_random_features (instance-proxy '
             'fill) -> our member draws (seed + epoch)')
    sampler = replay_sampler(ours_rec, train_paths)
    rt.patch(script, 'RandomMultipleGallerySampler', sampler,
             "training sampler -> replay of our sampler's order")
    rt.patch(script, 'T', transforms_without_augmentation(script.T),
             'random training transforms -> identity (off on both sides)')
    rt.patch(script, 'ClusterMemory', RecordingMemory, recording)
    rt.patch(script, 'DBSCAN', RecordingDBSCAN, recording)
    rt.patch(script, 'Evaluator', RecordingEvaluator, recording)
    rt.patch(ev_mod, 'pairwise_distance', recording_pairwise,
             'evaluation distance: the query / gallery features recorded '
             '(values unchanged)')
    ref_args = Namespace(
        dataset='subset', **reference_loader_args(
            work, batch, k, *common.scaled_size((HEIGHT, WIDTH),
                                                args.run_scale)),
        eps=args.run_eps, eps_gap=0.02, k1=30, k2=6, arch='resnet50', features=0,
        dropout=0, momentum=0.1, memorybank='CMhybrid', smooth=0, lr=0.00035,
        weight_decay=5e-4, epochs_stage1=1, epochs_stage2=1,
        iters_stage1=args.run_iters, iters_stage2=args.run_iters,
        step_size=20, seed=args.seed, print_freq=10**6, eval_step=10**6,
        temp=0.05, logs_dir=osp.join(work, 'ref_run'), pooling_type='gem',
        use_hard=False, no_cam=False)
    for stage in (script.main_worker_stage1, script.main_worker_stage2):
        error = call_reference_main(stage, ref_args, dtype)
        if error is not None and stage is script.main_worker_stage2 and \
                'model_best_stage2' in str(error) and len(maps_r) >= 3:
            # its last step re-tests the stage-2 model that beat the best
            # mAP of BOTH stages (a global shared by them); none did here
            report.notes.append(
                'run: the reference\'s final "Test with the best model" '
                'found no model_best_stage2.pth.tar (no stage-2 evaluation '
                'beat the stage-1 mAP: best_mAP is shared by the stages); '
                'everything compared was recorded before it.')
        elif error is not None:
            record_reference_failure(report, error,
                                     f'reference {stage.__name__} completed')
            break
    tol = common.STEP_TOLS['fp64'][1] if wide else args.step_tol
    for e, (a, b) in enumerate(zip(ours_rec.labels, ref_rec.labels)):
        report.compare_labels(lv, f'labels of clustering {e + 1}', a, b)
        if e >= len(ref_rec.memory):
            continue
        mo, mr = ours_rec.memory[e], ref_rec.memory[e]
        try:
            _compare_memories(report, e, a, b, mo, mr, tol)
        except (IndexError, ValueError, TypeError) as err:
            report.record(lv, f'memories built by clustering {e + 1}',
                          float('inf'), float('inf'), tol,
                          f'not comparable: {err}')
    if len(ours_rec.labels) != len(ref_rec.labels):
        report.check(lv, 'number of clusterings', False,
                     f'{len(ours_rec.labels)} vs {len(ref_rec.labels)}')
    report.compare(
        lv, f'loss terms of every iteration ({len(ref_rec.terms)})',
        [[t.get(m, 0.0) for m in TERMS] for t in ours_rec.terms],
        [[t.get(m, 0.0) for m in TERMS] for t in ref_rec.terms], tol,
        'L_DCP, L_MIP (0 in stage 1)')
    init_sd, sd_o = init.state_dict(), ours.state_dict()
    for name, net in (('student', created[-2]), ('momentum', created[-1])):
        # both sides start from ``init``: compare what training changed,
        # relative to the size of the change (as the steps level does); a
        # tensor's own max is no scale for a zero-initialised BN bias
        sd_r = trained.get(name) or net.state_dict()
        before = {k: init_sd[PREFIX['student'] + k[len(PREFIX[name]):]]
                  for k in maps[name]}
        tol_p, tol_b, floor_note = tol, tol, ''
        if floor_sd is not None:
            floor = rounding_floor(before, sd_o, floor_sd, maps[name])
            report.meta.setdefault('rounding_floor', {})[name] = floor
            tol_p = max(tol, FLOOR_FACTOR * floor['updates'])
            tol_b = max(tol, FLOOR_FACTOR * floor['bn_stats'])
            floor_note = (
                f"; tolerance max({tol:g}, {FLOOR_FACTOR} x the rounding "
                f"floor {floor['updates']:.2e}: our run from the initial "
                f'weights x (1 + {FLOOR_PERTURBATION:g} e) against ours)')
        common.compare_updates(
            report, lv, f'final {name} parameters: updates over the run',
            before, sd_o, sd_r, maps[name], tol_p, ' (Δ = final - initial)',
            f"; reference {'model' if name == 'student' else 'model_ema'} "
            'of stage 2' + floor_note)
        common.compare_buffers(
            report, lv, f'final {name} BN running statistics', sd_o, sd_r,
            maps[name], tol_b,
            '' if floor_sd is None else
            f"tolerance max({tol:g}, {FLOOR_FACTOR} x the rounding floor "
            f"{floor['bn_stats']:.2e})")
    # the reference evaluates model after stage 1, model and model_ema
    # after stage 2 (then the best again): its features of those two are
    # ranked by our evaluate_rank, as ours are
    for i, src in ((1, 'student'), (2, 'momentum')):
        ref_map = float('nan')
        if len(evals_r) > i:
            ev = evals_r[i]
            res = evaluate_rank(
                ev['qf'], ev['gf'], [p for _, p, _ in ev['query']],
                [p for _, p, _ in ev['gallery']],
                [c for _, _, c in ev['query']],
                [c for _, _, c in ev['gallery']], dtype=rank_dtype)
            ref_map = float(res['mAP'])
            paths = [f for f, _, _ in ev['query'] + ev['gallery']]
            # matched by folder + file name (query/x.jpg, bounding_box_test/)
            mine = {_last2(f): v for f, v in ours_feats[src].items()}
            report.compare(
                lv, f'final test features of the {src} encoder',
                torch.stack([mine[_last2(f)].double() for f in paths]),
                torch.cat([ev['qf'], ev['gf']]).double(), tol,
                f"{len(paths)} images matched by path; reference: its "
                "extract_features of " + ('model', 'model_ema')[i - 1])
        report.compare(
            lv, f'final mAP of the {src} encoder (test subset)',
            ours_map[src], ref_map, tol,
            f'both ranked by our evaluate_rank ({rank_dtype}) from each '
            f"side's features; reference: {('model', 'model_ema')[i - 1]} "
            '(its own evaluate_all: '
            f"{maps_r[i] if len(maps_r) > i else float('nan'):.6f})")
    iters = [len(b) // batch for b in ours_rec.batches]
    report.notes.append(
        f'short run in {args.run_precision}: {len(train_paths)} images, '
        f'stage 1 (1 epoch, L_DCP) then stage 2 (1 epoch, L_DCP + L_MIP, a '
        f'new Adam, EMA copied from the stage-1 model): 2 clusterings, '
        f'{iters} iterations of {batch} (P x K = {batch // k} x {k}, BN '
        f'groups of {batch // NUM_REPLICAS}), K = {k} instance proxies, '
        f'augmentations off, eps {args.run_eps}, '
        f'{run_size_note(args, (HEIGHT, WIDTH))}')


def _last2(path: str) -> str:
    """``folder/file`` of a path."""
    return '/'.join(osp.normpath(path).split(os.sep)[-2:])


def _compare_memories(report, e, a, b, mo, mr, tol) -> None:
    """The cluster and instance proxies clustering ``e`` built, the
    reference's rows in the order of our cluster ids (matched by their
    members): ours ``(2 C, D)`` proxy-type-major and ``(K C, D)`` slot-major,
    as the reference's ``features`` / ``features_ema``."""
    num = int(a.max()) + 1
    num_r = len(mr['dcp']) // 2
    if num != num_r:
        raise ValueError(f'{num} vs {num_r} clusters')
    order = []
    for c in range(num):
        vals, counts = np.unique(b[a == c], return_counts=True)
        order.append(int(vals[np.argmax(counts)]))
    order = torch.as_tensor(order)
    rows = torch.cat([order, order + num_r])
    report.compare('run', f'cluster proxies built by clustering {e + 1}',
                   mo['dcp'], mr['dcp'][rows], tol, '(2 C, D)')
    if mo['ins'] is None and mr['ins'] is None:
        return
    if mo['ins'] is None or mr['ins'] is None:
        raise ValueError('instance proxies on one side only')
    k = len(mr['ins']) // num_r
    rows = torch.cat([order + num_r * j for j in range(k)])
    report.compare('run', f'instance proxies built by clustering {e + 1}',
                   mo['ins'], mr['ins'][rows], tol,
                   f'(K C, D), K = {k}; member draws replayed from ours')


# ----------------------------------------------------------------------
# timing
def _random_batch(batch: int, num_instances: int, seed: int):
    """A P x K batch of random 320x128 uint8 images (ours: BGR as our
    loaders give them; the reference: RGB normalised)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) // num_instances
    imgs = torch.randint(0, 256, (batch, 3, HEIGHT, WIDTH), generator=g,
                         dtype=torch.uint8)
    samples = []
    for i in range(batch):
        s = ReIDDataSample()
        s.set_metainfo(dict(sample_idx=i, camid=i % 2))
        samples.append(s)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref = ((imgs.flip(1).float() / 255) - mean) / std
    return dict(inputs=imgs, data_samples=samples), ref, labels


def _timing(args, report, rt, maps) -> None:
    """Seconds per stage-2 training iteration (online forward, L_DCP +
    L_MIP, backward, Adam, memory updates, EMA forward and update), ours vs
    ``ClusterContrastTrainer_PCLMP``, the same random batch at 320x128."""
    from .timing import _Repeat, median_step_time
    batch = args.timing_batch or 32
    k = min(16, batch)
    per_gpu = min(batch, 64)
    cfg = common.load_config(
        CONFIG, _switch_values({'model.bn_group_size': per_gpu,
                                'model.momentum_bn_group_size': per_gpu,
                                'model.instance_memory.num_instances': k}))
    ours = common.build_model(cfg, args.seed)
    data, ref_x, labels = _random_batch(batch, k, args.seed)
    g = torch.Generator().manual_seed(args.seed)
    bank = F.normalize(torch.randn(batch, 2048, generator=g), dim=1)
    result = PseudoLabelResult.from_labels(
        labels.numpy(), {'student': bank, 'momentum': bank},
        cluster_encoder='student', epoch=STAGE2_EPOCH)
    ours.set_pseudo_labels(result)
    t_ours = common.time_train_step(cfg, ours, data, args.timing_iters,
                                    ours.momentum_update)
    cm = rt.import_module('clustercontrast.models.cm')
    trainers = rt.import_module('clustercontrast.trainers')
    use_market1501(rt, cm)
    models_mod = rt.import_module('clustercontrast.models')
    ref_s = _ref_net(models_mod, ours, maps_for(ours), 'student')
    ref_m = _ref_net(models_mod, ours, maps_for(ours), 'momentum')
    replicas = max(1, batch // per_gpu)
    dp_s = CPUDataParallel(ref_s, replicas)
    dp_m = CPUDataParallel(ref_m, replicas)
    num = result.num_clusters
    mem = cm.ClusterMemory(2048, num, temp=0.05, momentum=0.1,
                           mode='CMhard', num_instances=k)
    mem.features = ours.dcp_memory.features.reshape(-1, 2048).clone()
    mem.features_ema = _slot_layout(ours.instance_memory.features).clone()
    params = [{'params': [v]} for _, v in dp_s.named_parameters()
              if v.requires_grad]
    opt = torch.optim.Adam(params, lr=3.5e-4, weight_decay=5e-4)
    trainer = trainers.ClusterContrastTrainer_PCLMP(dp_s, dp_m, mem)
    loader = _Repeat((ref_x, None, labels, torch.zeros(batch),
                      torch.arange(batch)))
    t_ref = median_step_time(
        lambda: trainer.train(0, loader, opt, print_freq=10**6,
                              train_iters=1), args.timing_iters)
    setting = (f'ResNet-50, {HEIGHT}x{WIDTH}, stage 2, batch {batch} = '
               f'{batch // k} x {k} (BN groups of {per_gpu}), random '
               f'images, {args.device}, {torch.get_num_threads()} threads, '
               f'median of {args.timing_iters} after 1 warm-up')
    common.timing_rows(report, setting, t_ours, t_ref)


def maps_for(ours: nn.Module) -> Dict[str, Dict[str, str]]:
    """The key maps of a model (public for the tests)."""
    return _key_maps(ours)
