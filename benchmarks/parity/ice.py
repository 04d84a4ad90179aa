# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity of ICE with chenhao2345/ICE.

Our side is ``configs/ice/ice_r50_market.py`` with the switches in
:data:`SWITCHES`; the reference is the user's clone, driven through its own
modules (``ice.trainers.ImageTrainer``, its losses, evaluator and Jaccard
distance) and, for the short run, its own training script
(``examples/unsupervised_train.py``, ``main_worker``).

Two things are fixed by the harness on both sides, so that the two runs
draw the same random numbers where they draw them differently:

- ShuffleBN: the reference draws one ``torch.randperm`` per iteration
  (``ImageTrainer.get_shuffle_ids``, used by its three momentum forwards);
  ours calls mmpretrain's ``batch_shuffle_ddp`` once per momentum forward.
  Both are replaced by one fixed permutation per iteration
  (:class:`_Permutations`), the same for the three forwards of an
  iteration.
- The three views of a sample: with the augmentations off they would be
  the same image, so the steps level builds them deterministically and
  identically on both sides (strong 1 = the image flipped horizontally,
  weak = the image, strong 2 = the image rolled by 16 pixels along the
  width: pixel permutations, which commute with the normalisation).
"""
import argparse
import contextlib
import copy
import os.path as osp
import tempfile
import types
from argparse import Namespace
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.registry import PARAM_SCHEDULERS
from sklearn.cluster import DBSCAN

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance
from mmreid_usl.evaluation.functional import evaluate_rank
from mmreid_usl.models.utils import batch_shuffle
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from . import common
from .data import ReferenceDataset, make_subset
from .keymap import (check_key_map, copy_weights, resnet_encoder_key_map,
                     state_diff, sub_state_dict)
from .report import ParityReport
from .shims import CPUDataParallel, ReferenceRuntime, reference_script

CONFIG = 'configs/ice/ice_r50_market.py'
#: Our switches that select the reference behaviour, with why.
SWITCHES = {
    'model.bn_running_stats': (
        'first_group',
        'BN running statistics from the first of the 4 DataParallel '
        "replicas only (default 'every_group'), student and momentum"),
    'model.loss_cross.pad_negatives_with_positives': (
        True,
        'cross-camera loss on a bank with fewer than 50 proxies of other '
        'clusters: the reference\'s top-50 "negatives" then include the '
        'positives, counted twice in the softmax (default False: other '
        'clusters only; never differs on Market-size banks)'),
}
#: Images per BN group: the official 4 GPUs x 8 = batch 32.
BN_GROUP = 8
NUM_REPLICAS = 4
#: P x K of the steps level and of the timing row (official).
NUM_IDS, NUM_INSTANCES = 8, 4
#: P of the short run (batch 8, BN groups of 2): its epochs are one pass
#: over the clusters, floor(C / P) iterations; its 302 images at half
#: resolution give 8 clusters at --run-eps 0.4.
RUN_IDS = 2
TRAIN_SCRIPT = 'examples/unsupervised_train.py'
#: Our state-dict prefix of each encoder.
PREFIX = {'student': 'encoder.', 'momentum': 'momentum_encoder.module.'}
#: The AverageMeters ``ImageTrainer.train`` creates, in creation order; the
#: four loss meters receive ``loss_<term>.item()`` every iteration.
METER_NAMES = ('batch_time', 'data_time', 'loss_agnostic', 'loss_h_ins',
               'loss_cross', 'loss_s_ins', 'precision')
TERMS = ('loss_agnostic', 'loss_cross', 'loss_h_ins', 'loss_s_ins')
#: ``ImageTrainer`` arguments of the official script (its defaults:
#: --alpha 0.999, --tau-c 0.5, --tau-v 0.1, --scale-kl 0.4).
TRAINER_ARGS = dict(alpha=0.999, num_instance=NUM_INSTANCES, tau_c=0.5,
                    tau_v=0.1, scale_kl=0.4)
#: Pixels strong view 2 is rolled by along the width (steps level).
ROLL = 16
RECORDING = ('recording subclasses of AverageMeter (ImageTrainer.train '
             'logs every loss term through them) / DBSCAN / Evaluator / '
             'ImageTrainer (values read, nothing changed)')
SHUFFLE_SHIM = ('ImageTrainer.get_shuffle_ids -> the fixed permutation of '
                'the iteration (ours uses the same one)')


def _switch_values(extra: Dict[str, object] = None) -> Dict[str, object]:
    values = {k: v for k, (v, _) in SWITCHES.items()}
    values['model.bn_group_size'] = BN_GROUP
    values['model.momentum_bn_group_size'] = BN_GROUP
    values.update(extra or {})
    return values


def _key_maps(ours: nn.Module) -> Dict[str, Dict[str, str]]:
    """Our student / momentum encoder -> the reference ``model_1`` /
    ``model_1_ema`` (average pooling: no pooling parameters)."""
    return {
        name: resnet_encoder_key_map(
            sub_state_dict(ours, prefix).keys(),
            ours_prefix=prefix,
            pooling=None)
        for name, prefix in PREFIX.items()
    }


def _ref_pair(models_mod, ours, maps) -> Tuple[nn.Module, nn.Module]:
    """``model_1`` and ``model_1_ema`` as ``create_model`` builds them
    (ResNet-50, no embedding, norm=False), carrying our weights."""
    nets = []
    for name in ('student', 'momentum'):
        net = models_mod.create(
            'resnet50', num_features=0, dropout=0, num_classes=0)
        copy_weights(ours, net, maps[name], PREFIX[name])
        nets.append(net)
    return nets[0], nets[1]


def run(args: argparse.Namespace, report: ParityReport) -> None:
    """All levels of the ICE parity run."""
    work = args.work_dir or tempfile.mkdtemp(prefix='parity_ice_')
    subset = osp.join(work, 'subset')
    sizes = make_subset(args.data, subset, args.num_train, args.num_test)
    report.meta.update(config=CONFIG, subset=sizes)
    report.switches.update({k: v for k, (v, _) in SWITCHES.items()})
    report.switches['model.bn_group_size'] = BN_GROUP
    report.switches['model.momentum_bn_group_size'] = BN_GROUP
    report.notes.append(
        f'BN groups of {BN_GROUP} images = {NUM_REPLICAS} emulated '
        'DataParallel replicas x 8, the official 4 GPUs x 8 (batch 32), '
        'for the student and the momentum encoder.')
    report.notes.append(
        'ShuffleBN (harness, both sides): one fixed permutation per '
        'training iteration, used by the three momentum forwards of the '
        "iteration; the reference's ImageTrainer.get_shuffle_ids and our "
        'mmreid_usl.models.utils.batch_shuffle.batch_shuffle_ddp (the name '
        'shuffle_bn_forward looks up) return it instead of a fresh '
        'torch.randperm.')
    cfg = common.load_config(CONFIG, _switch_values(), subset)
    ours = common.build_model(cfg, args.seed)
    maps = _key_maps(ours)
    with ReferenceRuntime(args.reference, 'ice', args.device,
                          NUM_REPLICAS) as rt:
        models_mod = rt.import_module('ice.models')
        rt.torchvision_without_download(
            rt.import_module('ice.models.resnet'))
        ref_s, ref_m = _ref_pair(models_mod, ours, maps)
        for name, ref in (('student', ref_s), ('momentum', ref_m)):
            problems = check_key_map(
                sub_state_dict(ours, PREFIX[name]), ref.state_dict(),
                maps[name])
            report.check(
                'components', f'weights: key map is a bijection ({name} -> '
                f"model_1{'_ema' if name == 'momentum' else ''})",
                not problems, f'{len(maps[name])} tensors'
                if not problems else '; '.join(problems))
        levels = dict(
            components=lambda: _scoped(rt, _components, args, report, rt,
                                       cfg, ours, ref_s, ref_m, maps,
                                       subset),
            steps=lambda: _scoped(rt, _steps, args, report, rt, cfg, maps),
            run=lambda: _scoped(rt, _short_run, args, report, rt, maps,
                                work),
            timing=lambda: _scoped(rt, _timing, args, report, rt, maps))
        common.run_levels(report, args.levels, levels)
        report.shims.extend(s for s in rt.applied if s not in report.shims)


def _scoped(rt, fn, *args) -> None:
    """``fn(*args)`` with the patches it makes undone at its end."""
    with rt.scoped():
        fn(*args)


# ----------------------------------------------------------------------
# helpers shared by the levels
_FEATURES: Dict[int, torch.Tensor] = {}


def _script(rt):
    """The reference training script as a module (its main block not
    run)."""
    return reference_script(rt, 'ice_unsupervised_train', TRAIN_SCRIPT)


def _dp(module: nn.Module) -> nn.Module:
    """DataParallel as ``create_model`` wraps the networks (shimmed)."""
    return nn.DataParallel(module)


class _Permutations:
    """One fixed ShuffleBN permutation per training iteration, shared by
    both sides.

    Args:
        batch (int): Batch size.
        seed (int): Seed of the permutations.
        forwards (int): Our momentum forwards per iteration (each calls
            ``batch_shuffle_ddp`` once).
    """

    def __init__(self, batch: int, seed: int, forwards: int = 3) -> None:
        self.batch = batch
        self.forwards = forwards
        self._gen = torch.Generator().manual_seed(seed + 1000)
        self._perms: List[torch.Tensor] = []
        self.ours_calls = 0
        self.ref_calls = 0

    def perm(self, i: int) -> torch.Tensor:
        """The permutation of iteration ``i``."""
        while len(self._perms) <= i:
            self._perms.append(torch.randperm(self.batch,
                                              generator=self._gen))
        return self._perms[i]

    def reference(self, bsz: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """``ImageTrainer.get_shuffle_ids``: (shuffle, reverse) ids."""
        if bsz != self.batch:
            raise ValueError(f'batch of {bsz}, permutations of {self.batch}')
        perm = self.perm(self.ref_calls)
        self.ref_calls += 1
        return perm.clone(), torch.argsort(perm)

    def _ours(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``batch_shuffle_ddp`` on one process with the fixed
        permutation."""
        if len(x) != self.batch:
            raise ValueError(f'batch of {len(x)}, permutations of '
                             f'{self.batch}')
        perm = self.perm(self.ours_calls // self.forwards).to(x.device)
        self.ours_calls += 1
        return x[perm], torch.argsort(perm)

    @contextlib.contextmanager
    def ours(self) -> Iterator['_Permutations']:
        """Our ShuffleBN draws the fixed permutations inside the block."""
        old = batch_shuffle.batch_shuffle_ddp
        batch_shuffle.batch_shuffle_ddp = self._ours
        try:
            yield self
        finally:
            batch_shuffle.batch_shuffle_ddp = old


def _momentum_forwards(model) -> int:
    """Our momentum forwards per ICE iteration (strong 1, strong 2,
    weak, each when enabled)."""
    return (int(model.momentum_strong1) +
            int(model.loss_h_ins is not None or model.loss_s_ins is not None)
            + int(model.loss_s_ins is not None))


class _Tap(nn.Module):
    """Passes a network through and keeps its outputs (the first output
    of each training iteration, the student feature of strong 1, keeps its
    gradient). Nothing is changed: the trainer calls ``train()``,
    ``parameters()`` and ``forward`` of the wrapped network."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.outputs: List[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if out.requires_grad:
            out.retain_grad()
        self.outputs.append(out)
        return out


class _MeterTap:
    """Recording subclass of the reference's ``AverageMeter`` for
    ``ice.trainers``: every meter keeps the values it is given, so the loss
    terms that ``ImageTrainer.train`` logs (``loss_ccl.item()``, ...) are
    read without touching its loop."""

    def __init__(self, base: type) -> None:
        tap = self
        self.created: List[Any] = []

        class RecordingMeter(base):

            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.values: List[float] = []
                tap.created.append(self)

            def update(self, val, n=1):
                self.values.append(float(val))
                return super().update(val, n)

        self.cls = RecordingMeter

    def terms(self) -> List[Dict[str, float]]:
        """The loss terms of every iteration, in order (all ``train``
        calls so far)."""
        n = len(METER_NAMES)
        if len(self.created) % n:
            raise RuntimeError(
                f'ImageTrainer.train created {len(self.created)} meters, not '
                f'a multiple of {n} ({METER_NAMES}): the reference trainer '
                'changed; update METER_NAMES.')
        out = []
        for start in range(0, len(self.created), n):
            group = dict(zip(METER_NAMES, self.created[start:start + n]))
            for i in range(len(group['loss_agnostic'].values)):
                out.append({t: group[t].values[i] for t in TERMS})
        return out


class _Batches:
    """The reference's ``IterLoader`` interface over fixed batches
    ``(strong 1, weak, strong 2, pids, cids)`` (the order of
    ``Preprocessor_mutual``: ``_parse_data`` takes the second as the weak
    view and the third as strong 2)."""

    def __init__(self, batches: Sequence[tuple]) -> None:
        self.batches = list(batches)
        self.i = 0

    def __len__(self) -> int:
        return len(self.batches)

    def next(self) -> tuple:
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        return batch


def _views(x: torch.Tensor) -> List[torch.Tensor]:
    """Strong 1, weak, strong 2 of image tensors ``(..., H, W)`` (see the
    module docstring)."""
    return [x.flip(-1), x, x.roll(ROLL, dims=-1)]


def _view_batch(dataset, indices: Sequence[int]) -> dict:
    """Our collated three-view batch of ``indices`` (uint8 BGR, as
    ``MultiView`` + ``default_collate`` give it)."""
    items = []
    for i in indices:
        item = dataset[int(i)]
        items.append(dict(inputs=_views(item['inputs']),
                          data_samples=item['data_samples']))
    return default_collate(items)


def _ref_views(x: torch.Tensor, pids, cids) -> tuple:
    v = _views(x)
    return (v[0], v[1], v[2], torch.as_tensor(pids), torch.as_tensor(cids))


def _ref_memory(mem) -> dict:
    """What the reference trainer takes from ``main_worker``: the cluster
    centres and the per-camera proxy lists, from our memory (the
    construction itself is compared at the run level)."""
    cams = mem.proxy_cams
    return dict(
        centers=mem.centroids.clone(),
        intra_id_features=[
            mem.proxies[cams == c].clone() for c in range(len(mem.camera_ids))
        ],
        intra_id_labels=mem.proxy_labels.tolist())


def _running(model_sd: dict, keys: Sequence[str]) -> torch.Tensor:
    return torch.cat([model_sd[k].double().flatten() for k in keys])


def _note(rt, why: str) -> None:
    if why not in rt.applied:
        rt.applied.append(why)


def _ref_inputs(rt, dataset, indices, height=256, width=128):
    """The reference's test-pipeline tensors of ``indices``."""
    loader = _script(rt).get_test_loader(
        dataset, height, width, len(indices), 0,
        testset=[dataset.train[i] for i in indices])
    return next(iter(loader))[0]


def _size_text(scale: float) -> str:
    """``HxW`` of 256x128 images at ``scale``."""
    return 'x'.join(map(str, common.scaled_size((256, 128), scale)))


def _initial_features(ours, train_set, seed: int) -> torch.Tensor:
    """L2-normalised momentum features (eval) of the training subset at
    the initial weights (cached: components and steps cluster them)."""
    if seed not in _FEATURES:
        _FEATURES[seed] = common.extract(ours, train_set, 'momentum')
    return _FEATURES[seed]


# ----------------------------------------------------------------------
# components
def _components(args, report, rt, cfg, ours, ref_s, ref_m, maps,
                subset) -> None:
    lv = 'components'
    ref_data = ReferenceDataset(subset)
    train_set = common.build_dataset(cfg, 'cluster_dataloader')
    n = args.component_batch
    idx = list(range(n))
    initial = copy.deepcopy(ours.state_dict())
    # -- inputs: our pipeline + data preprocessor vs torchvision's
    x = _ref_inputs(rt, ref_data, idx)
    report.compare(
        lv, 'input tensors (test pipeline, decode + resize + normalise)',
        common.our_inputs(ours, train_set, idx), x, 1e-5,
        'our default pipeline (cv2 decode, PIL bicubic resize) vs PIL '
        'decode + torchvision bicubic resize')
    # -- eval mode: average pooling, BNNeck, L2-normalised (ResNet.forward
    #    of the reference normalises in eval mode)
    ours.eval()
    ref_s.eval()
    ref_m.eval()
    with torch.no_grad():
        pooled = ours.encoder.pooling(ours.encoder.backbone(x))
        pooled = pooled[-1] if isinstance(pooled, (tuple, list)) else pooled
        report.compare(lv, 'pooled feature (eval, average pooling)',
                       pooled.flatten(1), ref_s.gap(ref_s.base(x)).flatten(1),
                       1e-5)
        report.compare(lv, 'student output (eval, BNNeck, L2-normalised)',
                       F.normalize(ours.extract_feat(x), dim=1), ref_s(x),
                       1e-5)
        bank = F.normalize(ours.extract_feat(x, 'momentum'), dim=1)
        report.compare(lv, 'momentum output (eval, L2-normalised)', bank,
                       ref_m(x), 1e-5)
    # -- train mode: BN groups of 8 = 4 DataParallel replicas
    ours.train()
    dp_s, dp_m = _dp(ref_s), _dp(ref_m)
    dp_s.train()
    dp_m.train()
    with torch.no_grad():
        report.compare(
            lv, f'student output (train, {NUM_REPLICAS} BN groups of '
            f'{BN_GROUP})', ours.student_forward(x), dp_s(x), 1e-5,
            'raw post-BN feature (the reference returns it unnormalised in '
            'train mode)')
        perms = _Permutations(n, args.seed, forwards=1)
        with perms.ours():
            k_o = ours.momentum_forward(x)
        shuffle, reverse = perms.reference(n)
        report.compare(
            lv, 'momentum output (train, ShuffleBN, 4 BN groups of 8)', k_o,
            dp_m(x[shuffle])[reverse], 1e-5,
            'the same fixed permutation on both sides')
    sd_o = ours.state_dict()
    for name, ref in (('student', ref_s), ('momentum', ref_m)):
        keys = [k for k in maps[name] if 'running' in k]
        sd_r = ref.state_dict()
        report.compare(
            lv, f'{name} BN running statistics after one train forward',
            _running(sd_o, keys),
            torch.cat([sd_r[maps[name][k]].double().flatten()
                       for k in keys]), 1e-5,
            "every running_mean / running_var; ours with "
            f"{SWITCHES['model.bn_running_stats'][0]!r}")
    _ema(args, report, rt, ours, ref_s, ref_m, maps)
    _reset(ours, initial, ref_s, ref_m, maps)
    _one_iteration(args, report, rt, ours, ref_s, ref_m, maps, x, bank,
                   train_set, n)
    _reset(ours, initial, ref_s, ref_m, maps)
    _clustering(args, report, rt, ours, train_set)
    _evaluation(report, rt, cfg)
    _bn_deviation(report, ours, x, initial)
    _reset(ours, initial, ref_s, ref_m, maps)


def _reset(ours, initial, ref_s, ref_m, maps) -> None:
    """Back to the initial weights on both sides."""
    ours.load_state_dict(initial)
    copy_weights(ours, ref_s, maps['student'], PREFIX['student'])
    copy_weights(ours, ref_m, maps['momentum'], PREFIX['momentum'])


def _ema(args, report, rt, ours, ref_s, ref_m, maps) -> None:
    """One EMA step from a student that differs from the momentum
    encoder: our ``momentum_update`` vs ``ImageTrainer._update_ema_variables``
    with alpha 0.999 (:func:`common.compare_ema_step`)."""
    trainers = rt.import_module('ice.trainers')

    def ref_step() -> None:
        trainer = trainers.ImageTrainer(
            _dp(ref_s), _dp(ref_m), num_cluster=1, **TRAINER_ARGS)
        trainer._update_ema_variables(trainer.model_1, trainer.model_1_ema,
                                      trainer.alpha, 0)

    common.compare_ema_step(
        report, ours, ref_s, ref_m, maps, PREFIX, args.seed + 1, ref_step,
        'alpha=0.999; every parameter, the frozen BNNeck bias included',
        "; the momentum encoder's BN statistics come from its own ShuffleBN "
        'forwards')


def _one_iteration(args, report, rt, ours, ref_s, ref_m, maps, x, bank,
                   train_set, n) -> None:
    """Memory, every loss term and its gradient, and the BN statistics of
    one training iteration on the same batch."""
    lv = 'components'
    trainers = rt.import_module('ice.trainers')
    # a P x K batch: 8 pseudo-identities of 4 images, their real cameras;
    # the bank adds 40 synthetic clusters so that it holds >= 50 + |P_i|
    # camera proxies (the 50 hard negatives are then all of other clusters)
    labels_b = torch.arange(n) // NUM_INSTANCES
    cams_b = torch.as_tensor(np.asarray(train_set.get_camids())[:n])
    g = torch.Generator().manual_seed(args.seed + 2)
    extra = 120
    bank_all = torch.cat([
        bank, F.normalize(torch.randn(extra, bank.shape[1], generator=g),
                          dim=1)
    ])
    labels = torch.cat([labels_b, int(labels_b.max()) + 1 +
                        torch.arange(extra) // 3])
    cams = torch.cat([cams_b, torch.randint(0, 2, (extra, ), generator=g)])
    result = PseudoLabelResult.from_labels(
        labels.numpy(), {'momentum': bank_all}, cluster_encoder='momentum',
        camids=cams)
    ours.set_pseudo_labels(result)
    mem = ours.proxy_memory
    _memory_expectation(report, mem, bank_all, labels, cams)
    # -- the same three views on both sides
    views = _views(x)
    inputs = torch.stack(views)
    samples = []
    for i in range(n):
        s = ReIDDataSample()
        s.set_metainfo(dict(sample_idx=i, camid=int(cams_b[i])))
        samples.append(s)
    perms = _Permutations(n, args.seed, _momentum_forwards(ours))
    # -- ours: one loss evaluation, the student feature of strong 1 kept
    ours.train()
    kept: Dict[str, Any] = {'momentum': []}
    student_forward, momentum_forward = (ours.student_forward,
                                         ours.momentum_forward)

    def tap_student(inp):
        out = student_forward(inp)
        if out.requires_grad and 'f' not in kept:
            out.retain_grad()
            kept['f'] = out
        return out

    def tap_momentum(inp):
        out = momentum_forward(inp)
        kept['momentum'].append(out)
        return out

    ours.student_forward, ours.momentum_forward = tap_student, tap_momentum
    try:
        with perms.ours():
            losses = ours.loss(inputs, samples)
    finally:
        del ours.student_forward, ours.momentum_forward
    total_o = sum(losses.values())
    total_o.backward()
    ours.zero_grad()
    # -- reference: one iteration of ImageTrainer.train on the same batch
    meters = _MeterTap(trainers.AverageMeter)
    rt.patch(trainers, 'AverageMeter', meters.cls, RECORDING)
    tap_s, tap_m = _Tap(_dp(ref_s)), _Tap(_dp(ref_m))
    trainer = trainers.ImageTrainer(
        tap_s, tap_m, num_cluster=result.num_clusters, **TRAINER_ARGS)
    trainer.get_shuffle_ids = perms.reference
    _note(rt, SHUFFLE_SHIM)
    params = [v for v in tap_s.parameters() if v.requires_grad]
    ref_mem = _ref_memory(mem)
    trainer.train(
        0,
        _Batches([_ref_views(x, labels_b, cams_b)]),
        torch.optim.SGD(params, lr=0.0),  # the step leaves the weights
        print_freq=10**6,
        train_iters=1,
        cams=cams.numpy(),
        all_pseudo_label=labels.numpy(),
        **ref_mem)
    ref_terms = meters.terms()[0]
    # -- the bank the reference trainer assembles from the per-camera lists
    report.check(
        lv, 'camera proxy bank order (ImageTrainer.train assembly)',
        torch.equal(trainer.concate_intra_class.cpu(), mem.proxy_labels)
        and torch.equal(
            torch.cat([trainer.percam_memory[int(c)]
                       for c in trainer.unique_cams]), mem.proxies),
        f'{mem.num_proxies} proxies, camera-major then cluster, from '
        f'{len(mem.camera_ids)} cameras (>= 50 + |P| proxies: the 50 hard '
        'negatives are all of other clusters)')
    f_r = tap_s.outputs[0]
    # the reference un-shuffles after its forwards: the recorded outputs
    # are in the shuffled order
    reverse = torch.argsort(perms.perm(0))
    mom_r = [out[reverse] for out in tap_m.outputs]
    report.compare(lv, 'iteration: student feature of strong 1',
                   kept['f'], f_r, 1e-5)
    report.compare(
        lv, 'iteration: momentum features (strong 1, strong 2, weak; '
        'ShuffleBN)', torch.stack(kept['momentum']), torch.stack(mom_r),
        1e-5)
    for term in TERMS:
        report.compare(lv, f'iteration: {term} value', losses[term],
                       ref_terms[term], 1e-5,
                       'each side its own forward of the batch')
    report.compare(lv, 'iteration: total loss', total_o,
                   sum(ref_terms.values()), 1e-5)
    report.compare(lv, 'iteration: gradient of the total loss w.r.t. the '
                   'student feature', kept['f'].grad, f_r.grad, 1e-5)
    for name, ref, dp_forwards in (('student', ref_s, 2),
                                   ('momentum', ref_m, 3)):
        keys = [k for k in maps[name] if 'running' in k or 'num_batches' in k]
        sd_o, sd_r = ours.state_dict(), ref.state_dict()
        report.compare(
            lv, f'iteration: {name} BN buffers', _running(sd_o, keys),
            torch.cat([sd_r[maps[name][k]].double().flatten()
                       for k in keys]), 1e-5,
            f'{dp_forwards} train forwards per iteration on both sides')
    _term_gradients(report, trainer, ours, mem, f_r.detach(), mom_r[1],
                    mom_r[2], labels_b, cams_b, f_r.grad)


def _memory_expectation(report, mem, bank, labels, cams) -> None:
    """Our proxies against the construction of ``main_worker`` (re-typed
    here as a harness expectation: it is inline in the script; the
    reference's own construction is compared at the run level)."""
    lv = 'components'
    num = int(labels.max()) + 1
    centres = torch.stack([bank[labels == c].mean(0) for c in range(num)])
    report.compare(lv, 'cluster proxies (unnormalised means)',
                   mem.centroids, centres, 1e-6,
                   "harness expectation of main_worker's `centers`")
    rows, plabels, pcams = [], [], []
    for c in torch.unique(cams).tolist():
        for lab in torch.unique(labels[cams == c]).tolist():
            rows.append(F.normalize(
                bank[(cams == c) & (labels == lab)].mean(0), dim=0))
            plabels.append(lab)
            pcams.append(c)
    report.compare(lv, 'camera proxies (normalised per-camera means)',
                   mem.proxies, torch.stack(rows), 1e-6,
                   "harness expectation of main_worker's "
                   '`intra_id_features`, camera-major then cluster')
    report.check(
        lv, 'camera proxy labels and cameras',
        mem.proxy_labels.tolist() == plabels
        and mem.proxy_cams.tolist() == pcams,
        f'{len(plabels)} proxies')


def _term_gradients(report, trainer, ours, mem, f, keys, weak, targets,
                    cams, total_grad) -> None:
    """Every term's value and gradient w.r.t. the student feature on the
    same tensors (the reference's feature and momentum features): the
    reference's callable loss modules (``ccloss``, ``vcloss``, ``kl``) fed
    as ``ImageTrainer.train`` feeds them; its cross-camera loss is inline,
    so its gradient is the iteration's total minus the three others."""
    lv = 'components'
    centers = mem.centroids

    def grad_of(fn):
        leaf = f.clone().requires_grad_(True)
        value = fn(leaf)
        value.backward()
        return float(value.detach()), leaf.grad

    ref_fns = {
        'loss_agnostic': lambda q: trainer.ccloss(
            q @ centers.t() / trainer.tau_c, targets),
        'loss_h_ins': lambda q: trainer.vcloss(
            F.normalize(q), F.normalize(keys), targets),
        'loss_s_ins': lambda q: trainer.kl(
            F.softmax(F.normalize(q) @ F.normalize(keys).t() /
                      trainer.scale_kl, dim=1).log(),
            F.softmax(F.normalize(weak) @ F.normalize(weak).t() /
                      trainer.scale_kl, dim=1)) * 10,
    }
    cam_proxies = mem.camera_proxies(cams)
    ours_fns = {
        'loss_agnostic': lambda q: ours.loss_agnostic(q, centers, targets),
        'loss_cross': lambda q: ours.loss_cross(q, targets, cam_proxies),
        'loss_h_ins': lambda q: ours.loss_h_ins(q, keys, targets),
        'loss_s_ins': lambda q: ours.loss_s_ins(q, keys, weak),
    }
    ref_grads = {t: grad_of(fn)[1] for t, fn in ref_fns.items()}
    ref_grads['loss_cross'] = total_grad - sum(ref_grads.values())
    for term in TERMS:
        _, g_o = grad_of(ours_fns[term])
        note = ('reference: iteration total minus the three callable terms '
                '(the cross-camera loss is inline in ImageTrainer.train)'
                if term == 'loss_cross' else
                'reference: trainer.' + {'loss_agnostic': 'ccloss',
                                         'loss_h_ins': 'vcloss',
                                         'loss_s_ins': 'kl x 10'}[term])
        report.compare(lv, f'{term}: gradient w.r.t. the student feature',
                       g_o, ref_grads[term],
                       1e-4 if term == 'loss_cross' else 1e-5, note)


def _clustering(args, report, rt, ours, train_set) -> None:
    """Jaccard distance and DBSCAN labels of the momentum features of the
    subset (the reference's ``ice.utils.faiss_rerank``)."""
    lv = 'components'
    rerank = rt.import_module('ice.utils.faiss_rerank')
    feats = _initial_features(ours, train_set, args.seed)
    n = len(feats)
    ours_d = JaccardDistance(k1=30, k2=6, knn_backend='faiss')(feats)
    ref_d = rerank.compute_jaccard_distance(
        feats, k1=30, k2=6, print_flag=False, search_option=3)
    report.compare(lv, f'Jaccard distance (momentum features, N={n})',
                   common.jaccard_dense(ours_d, n), ref_d, 1e-5,
                   'unstored pairs of our sparse matrix = 1')
    lab_o = DBSCANClusterer(eps=args.eps, min_samples=4)(dist=ours_d)
    lab_r = DBSCAN(eps=args.eps, min_samples=4, metric='precomputed',
                   n_jobs=-1).fit_predict(ref_d)
    report.compare_labels(lv, f'DBSCAN labels (eps {args.eps})', lab_o,
                          lab_r)


def _evaluation(report, rt, cfg) -> None:
    """mAP and CMC of ``ice.evaluators`` from the same distance matrix
    (features drawn around one centre per identity: no extraction)."""
    lv = 'components'
    ev = rt.import_module('ice.evaluators')
    test = common.build_dataset(cfg, 'test_dataloader')
    pids, cams = test.get_pids(), test.get_camids()
    g = torch.Generator().manual_seed(3)
    uniq = {p: i for i, p in enumerate(sorted(set(pids.tolist())))}
    centres = torch.randn(len(uniq), 64, generator=g)
    feats = F.normalize(
        centres[[uniq[p] for p in pids.tolist()]] +
        1.5 * torch.randn(len(pids), 64, generator=g), dim=1)
    is_q = np.arange(len(test)) < test.num_query
    distmat, qf, gf, query, gallery = common.reference_pairwise(
        ev, test, feats, pids, cams, is_q)
    cmc, m_ap = ev.evaluate_all(
        torch.as_tensor(qf), torch.as_tensor(gf), distmat, query=query,
        gallery=gallery, cmc_flag=True)
    ours = evaluate_rank(
        torch.as_tensor(qf), torch.as_tensor(gf), pids[is_q], pids[~is_q],
        cams[is_q], cams[~is_q], dist_fn=lambda a, b: distmat[a:b].clone())
    report.compare(lv, 'mAP (same distance matrix)', ours['mAP'], m_ap, 1e-6,
                   'ice.evaluators.evaluate_all; synthetic features of the '
                   'test subset')
    report.compare(lv, 'CMC ranks 1-10 (same distance matrix)',
                   ours['cmc'][:10], cmc[:10], 1e-6)


def _bn_deviation(report, ours, x, initial) -> None:
    """Our default (every BN group moves the statistics) against the
    DataParallel behaviour, after one student train forward."""
    out = common.running_var_by_bn_mode(ours, x, initial, prefix='encoder.')
    ours.bn_running_stats = SWITCHES['model.bn_running_stats'][0]
    common.report_bn_deviation(
        report, out, 'every group moves the statistics (4 updates per '
        'forward instead of 1; student and momentum); changes eval features '
        'only')


# ----------------------------------------------------------------------
# training steps
def _steps(args, report, rt, cfg, maps) -> None:
    """N optimiser steps (+ EMA updates) from the same weights on the same
    three-view batches, both sides in ``--step-precision`` (float64: the
    exactness check)."""
    lv = 'steps'
    wide, dtype = common.step_precision(args, rt)
    trainers = rt.import_module('ice.trainers')
    models_mod = rt.import_module('ice.models')
    script = _script(rt)
    ours = common.build_model(cfg, args.seed)
    ref_s, ref_m = _ref_pair(models_mod, ours, maps)
    # labels: a clustering of the initial momentum features of the
    # full-resolution subset (float32, as the runs cluster; those of the
    # components level); the proxies our memory builds are given to the
    # reference trainer as main_worker gives them (their construction is
    # compared at the run level). The steps themselves run on the images
    # at --step-scale of the resolution.
    feats = _initial_features(
        ours, common.build_dataset(cfg, 'train_dataloader',
                                   'cluster_dataloader'), args.seed)
    train_set = common.build_dataset(
        common.with_image_scale(cfg, args.step_scale), 'train_dataloader',
        'cluster_dataloader')
    labels = DBSCANClusterer(eps=args.eps, min_samples=4)(
        dist=JaccardDistance(k1=30, k2=6)(feats))
    ours.to(dtype)
    ref_s.to(dtype)
    ref_m.to(dtype)
    ours.data_preprocessor = common.CastInputs(ours.data_preprocessor,
                                               dtype)
    camids = torch.as_tensor(np.asarray(train_set.get_camids()))
    result = PseudoLabelResult.from_labels(
        labels, {'momentum': feats.to(dtype)}, cluster_encoder='momentum',
        camids=camids)
    ours.set_pseudo_labels(result)
    mem = ours.proxy_memory
    batch = NUM_IDS * NUM_INSTANCES
    if args.step_batch != batch:
        report.notes.append(f'steps: batch {batch} (ICE P x K = 8 x 4); '
                            f'--step-batch {args.step_batch} ignored')
    if result.num_clusters < NUM_IDS:
        raise RuntimeError(
            f'{result.num_clusters} clusters on the subset: too few for '
            f'{NUM_IDS} identities per batch; raise --eps or --num-train.')
    batches = common.pk_batches(result.labels.numpy(), NUM_IDS,
                                NUM_INSTANCES, args.steps, args.seed)
    perms = _Permutations(batch, args.seed, _momentum_forwards(ours))
    before = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    # the same input tensors on both sides (their equality through the two
    # pipelines is a component check): our pipeline's, cast to the
    # precision of the level; the views are pixel permutations of them
    inputs = [common.our_inputs(ours, train_set, b) for b in batches]
    # -- ours: the Runner's train_step with the config's optimiser wrapper
    #    and warm-up (LinearLR at epoch 0), then the EMA update of the
    #    MomentumUpdateHook
    optim = common.build_optimizer(cfg, ours)
    for sched in cfg.param_scheduler:
        PARAM_SCHEDULERS.build(dict(sched, optimizer=optim))
    lr_o = optim.optimizer.param_groups[0]['lr']
    norms_o: List[float] = []
    grads_o: Dict[str, torch.Tensor] = {}
    common.record_grads(optim.optimizer, dict(ours.named_parameters()),
                        norms_o, grads_o)
    kept: Dict[str, Any] = {}
    student_forward = ours.student_forward

    def tap_student(inp):
        out = student_forward(inp)
        if out.requires_grad and 'f' not in kept:
            kept['f'] = out.detach().clone()
        return out

    ours.student_forward = tap_student
    ours.train()
    terms_o = []
    try:
        with perms.ours():
            for b in batches:
                log = ours.train_step(_view_batch(train_set, b), optim)
                ours.momentum_update()
                terms_o.append(
                    {t: float(log[t].detach()) for t in TERMS})
    finally:
        del ours.student_forward
    # -- reference: its trainer, its optimiser (one group per tensor, as
    #    main_worker builds it) and its warm-up scheduler at epoch 0
    dp_s, dp_m = _dp(ref_s), _dp(ref_m)
    params = [{'params': [v], 'lr': 3.5e-4, 'weight_decay': 5e-4}
              for _, v in dp_s.named_parameters() if v.requires_grad]
    opt_r = torch.optim.Adam(params)
    script.WarmupMultiStepLR(opt_r, [], gamma=1, warmup_factor=0.1,
                             warmup_iters=10)
    lr_r = opt_r.param_groups[0]['lr']
    norms_r: List[float] = []
    grads_r: Dict[str, torch.Tensor] = {}
    common.record_grads(opt_r, dict(ref_s.named_parameters()), norms_r,
                        grads_r)
    meters = _MeterTap(trainers.AverageMeter)
    rt.patch(trainers, 'AverageMeter', meters.cls, RECORDING)
    trainer = trainers.ImageTrainer(
        dp_s, dp_m, num_cluster=result.num_clusters, **TRAINER_ARGS)
    trainer.get_shuffle_ids = perms.reference
    _note(rt, SHUFFLE_SHIM)
    trainer.train(
        0,
        _Batches([
            _ref_views(x, result.labels[b], camids[b])
            for x, b in zip(inputs, batches)
        ]),
        opt_r,
        print_freq=10**6,
        train_iters=len(batches),
        cams=camids.numpy(),
        all_pseudo_label=result.labels.numpy(),
        **_ref_memory(mem))
    terms_r = meters.terms()
    # -- comparisons
    tol1, tol_n = common.STEP_TOLS[args.step_precision]
    report.compare(
        lv, 'learning rate of step 1', lr_o, lr_r, 1e-12,
        f'{lr_r:g}: epoch 0 of the warm-up, each side its own scheduler '
        "(ours the config's LinearLR(start_factor=0.1), the reference "
        'WarmupMultiStepLR(warmup_factor=0.1, warmup_iters=10))')
    common.compare_steps(report, args, maps['student'], before, ours, ref_s,
                         [sum(t.values()) for t in terms_o],
                         [sum(t.values()) for t in terms_r], norms_o,
                         norms_r, grads_o, grads_r, lr=lr_o)
    for i, (a, b) in enumerate(zip(terms_o, terms_r)):
        report.compare(lv, f'loss terms, step {i + 1}',
                       [a[k] for k in TERMS], [b[k] for k in TERMS],
                       tol1 if i == 0 else tol_n, ', '.join(TERMS))
    n = len(batches)
    sd_o, sd_r = ours.state_dict(), ref_m.state_dict()
    mom = maps['momentum']
    upd = common.update_diff(
        before, sd_o, sd_r,
        {k: t for k, t in mom.items()
         if 'running' not in k and 'num_batches' not in k})
    report.record(
        lv, f'momentum encoder: parameter updates after {n} EMA steps',
        upd['max_abs'], upd['rel_l2'], tol_n,
        "max_rel = ||Δours - Δref||₂ / ||Δref||₂; largest update "
        f"{upd['max_update']:.3g}")
    buffers = [k for k in mom if 'running' in k]
    report.compare(
        lv, f'momentum encoder: BN running statistics after {n} steps',
        torch.cat([sd_o[k].flatten() for k in buffers]),
        torch.cat([sd_r[mom[k]].flatten() for k in buffers]), tol_n,
        '3 ShuffleBN forwards per step')
    report.notes.append(
        f'steps level in {args.step_precision}: {n} steps of {batch} images '
        f'at {_size_text(args.step_scale)} '
        f'(P x K = {NUM_IDS} x {NUM_INSTANCES}) over a clustering of the '
        f'initial momentum features ({result.num_clusters} clusters, '
        f'{mem.num_proxies} camera proxies); views: strong 1 = flipped, '
        f'weak = the image, strong 2 = rolled by {ROLL} px; inputs = our '
        "pipeline's tensors on both sides; the BN rows without a prefix "
        'are the student\'s')
    _pad_deviation(report, ours, mem, kept['f'], result, batches[0],
                   terms_r[0]['loss_cross'])


def _pad_deviation(report, ours, mem, feats, result, batch,
                   ref_value) -> None:
    """The cross-camera loss of step 1 with our default selection of the
    negatives (other clusters only) against the reference's value."""
    targets = result.labels[torch.as_tensor(batch)]
    cam_proxies = mem.camera_proxies(result.camids[torch.as_tensor(batch)])
    loss = copy.deepcopy(ours.loss_cross)
    loss.pad_negatives_with_positives = False
    with torch.no_grad():
        default = float(loss(feats, targets, cam_proxies))
    report.deviation(
        'hard negatives of the cross-camera loss on a short bank',
        'model.loss_cross.pad_negatives_with_positives=True',
        f'loss_cross of step 1 (bank of {mem.num_proxies} proxies < 50 + '
        '|P|)', default, ref_value,
        'the official top-50 over the masked similarities also takes the '
        'positives when fewer than 50 other proxies exist; identical on '
        'banks of >= 50 + |P| proxies (Market: ~1,500)')


# ----------------------------------------------------------------------
# short run
def _three_views(cfg) -> list:
    """Our training pipeline without augmentation: three views of the
    test pipeline's resize (strong 1, weak, strong 2 all unaugmented)."""
    test = copy.deepcopy(cfg.cluster_dataloader.dataset.pipeline)
    load, *resize, pack = test
    return [load, dict(type='MultiView', transforms=[resize] * 3), pack]


def _proxies_of(model) -> dict:
    """What each labelling builds in our model (recorded)."""
    mem = model.proxy_memory
    return dict(
        centroids=mem.centroids.detach().clone(),
        proxies=mem.proxies.detach().clone(),
        proxy_labels=mem.proxy_labels.clone(),
        proxy_cams=mem.camera_ids[mem.proxy_cams].clone())


def _short_run(args, report, rt, maps, work) -> None:
    """Ours (Runner) vs ``main_worker`` of the official training
    script, on the run's own subset (``--run-images``)."""
    from .short_run import (Recorder, compare_run, our_map, record_ours,
                            reference_loader_args, replay_sampler,
                            run_overrides, run_reference_main,
                            run_size_note, train_ours,
                            transforms_without_augmentation)
    script = _script(rt)
    trainers = rt.import_module('ice.trainers')
    wide = args.run_precision == 'fp64'
    dtype = torch.float64 if wide else torch.float32
    num_ids, k = RUN_IDS, NUM_INSTANCES
    batch = num_ids * k
    subset = osp.join(work, 'subset_run')
    make_subset(args.data, subset, args.run_images, args.run_test)
    overrides = run_overrides(batch, args.run_iters, args.run_eps, k,
                              NUM_REPLICAS)
    overrides.update({
        'model.momentum_bn_group_size': batch // NUM_REPLICAS,
        # one pass over the clusters per epoch, the last incomplete batch
        # dropped: the official loader (MoreCameraSampler over every
        # cluster, DataLoader(drop_last=True)) within one pass, so that no
        # batch holds a cluster twice
        'train_dataloader.sampler.samples_per_epoch': 'clusters',
        'train_dataloader.drop_last': True,
        'randomness.seed': args.seed,
        'train_dataloader.sampler.seed': args.seed
    })
    cfg = common.load_config(CONFIG, _switch_values(overrides), subset,
                             args.run_scale)
    init = common.build_model(cfg, args.seed)
    init_ckpt = osp.join(work, 'init_ice.pth')
    torch.save({'state_dict': init.state_dict()}, init_ckpt)
    perms = _Permutations(batch, args.seed, _momentum_forwards(init))
    # -- ours
    with record_ours(type(init), Recorder(),
                     memory_fn=_proxies_of) as ours_rec, perms.ours():
        ours = train_ours(cfg, osp.join(work, 'ours_run'), init_ckpt,
                          train_pipeline=_three_views(cfg), dtype=dtype)
    ours_map = our_map(ours, cfg, 'momentum')
    # a batch with two blocks of one cluster (our sampler's permutations
    # of the clusters run on across batches; the official loader drops the
    # last incomplete batch of each permutation) is ragged for the
    # reference's hard-instance loss, which needs exactly K images per
    # identity
    ragged = _ragged_batches(ours_rec, batch, k)
    report.check(
        'run', 'every replayed batch holds P whole identities', not ragged,
        f'batches (epoch, iteration) {ragged} repeat a cluster: the '
        'reference cannot train on them' if ragged else
        f'{num_ids} distinct clusters x {k} in each of the '
        f'{sum(len(b) for b in ours_rec.batches) // batch} batches')
    # -- reference
    ref_rec = Recorder()
    data = ReferenceDataset(subset)
    train_paths = [f for f, _, _ in data.train]
    created: List[nn.Module] = []
    models_mod = script.models
    create = models_mod.create

    def create_with_our_weights(name, *a, **kw):
        # create_model builds model_1, then model_1_ema (later calls, e.g.
        # of the timing level, build plain networks)
        net = create(name, *a, **kw)
        if len(created) < 2:
            which = ('student', 'momentum')[len(created)]
            copy_weights(init, net, maps[which], PREFIX[which])
            created.append(net)
        return net

    meters = _MeterTap(trainers.AverageMeter)

    class RecordingTrainer(script.ImageTrainer):
        """Records the proxies it is given / assembles; the iteration's
        ShuffleBN permutation is the harness's."""

        def get_shuffle_ids(self, bsz):
            return perms.reference(bsz)

        def train(self, epoch, data_loader_target, optimizer, *a, **kw):
            try:
                return super().train(epoch, data_loader_target, optimizer,
                                     *a, **kw)
            finally:
                ref_rec.memory.append(dict(
                    centroids=kw['centers'].detach().clone(),
                    proxies=torch.cat([self.percam_memory[int(c)]
                                       for c in self.unique_cams]),
                    proxy_labels=self.concate_intra_class.clone(),
                    proxy_cams=torch.cat([
                        torch.full((len(self.percam_memory[int(c)]), ),
                                   int(c)) for c in self.unique_cams
                    ])))

    class RecordingDBSCAN(script.DBSCAN):

        def fit_predict(self, X, y=None, sample_weight=None):
            labels = super().fit_predict(X)
            ref_rec.labels.append(np.asarray(labels).copy())
            return labels

    maps_r: List[float] = []

    class RecordingEvaluator(script.Evaluator):

        def evaluate(self, *a, **kw):
            out = super().evaluate(*a, **kw)
            maps_r.append(float(out[1] if isinstance(out, tuple) else out))
            return out

    rt.patch(models_mod, 'create', create_with_our_weights,
             'model factory: our initial weights copied in after creation '
             '(model_1 <- our student, model_1_ema <- our momentum encoder)')
    rt.patch(script, 'get_data', lambda name, data_dir: data,
             'dataset factory -> the CUHK03 subset (open-reid style lists)')
    common.patch_jaccard_faiss_cpu(rt, script)
    if wide:
        rt.cuda_shims(torch.float64)
        rt.patch(script, 'np', _numpy_float64(),
                 "main_worker's np.float32 buffer of the camera proxies "
                 '(intra_id_features) -> float64, with the rest of the '
                 'reference (float64 exactness check only)')
    rt.patch(script, 'MoreCameraSampler',
             replay_sampler(ours_rec, train_paths),
             "training sampler -> replay of our sampler's order")
    get_train_loader = script.get_train_loader
    epoch = [0]

    def train_loader_of_the_replay(dataset, height, width, batch_size,
                                   workers, num_instances, iters, **kw):
        # the iterations of the replayed epoch (one pass over its clusters)
        iters = len(ours_rec.batches[epoch[0]]) // batch_size
        epoch[0] += 1
        return get_train_loader(dataset, height, width, batch_size, workers,
                                num_instances, iters, **kw)

    rt.patch(script, 'get_train_loader', train_loader_of_the_replay,
             'IterLoader length (--iters) -> the iterations of the replayed '
             'epoch: one pass over the clusters, floor(C / P)')
    rt.patch(script, 'T', transforms_without_augmentation(script.T),
             'random training transforms -> identity (off on both sides)')
    rt.patch(trainers, 'AverageMeter', meters.cls, RECORDING)
    rt.patch(script, 'ImageTrainer', RecordingTrainer, RECORDING)
    rt.patch(script, 'DBSCAN', RecordingDBSCAN, RECORDING)
    rt.patch(script, 'Evaluator', RecordingEvaluator, RECORDING)
    _note(rt, SHUFFLE_SHIM)
    ref_args = Namespace(
        dataset_target='subset',
        **reference_loader_args(work, batch, k,
                                *common.scaled_size((256, 128),
                                                    args.run_scale)),
        arch='resnet50',
        features=0,
        dropout=0,
        lr=0.00035,
        alpha=0.999,
        weight_decay=5e-4,
        epochs=2,
        iters=args.run_iters,
        seed=args.seed,
        print_freq=10**6,
        eval_step=2,  # evaluate (and keep model_best) after epoch 2
        tau_c=0.5,
        tau_v=0.1,
        scale_kl=0.4,
        warmup_step=10,
        milestones=[],
        logs_dir=osp.join(work, 'ref_run'),
        eps=args.run_eps,
        k1=30,
        min_samples=4,
        init='')
    run_reference_main(report, script.main_worker, ref_args, dtype)
    ref_rec.terms = meters.terms()
    ref_rec.losses = [sum(t.values()) for t in ref_rec.terms]
    _compare_run(report, ours_rec, ref_rec, ours, created, maps, ours_map,
                 maps_r[-1] if maps_r else float('nan'),
                 common.STEP_TOLS['fp64'][1] if wide else args.step_tol,
                 compare_run)
    iters = [len(b) // batch for b in ours_rec.batches]
    report.notes.append(
        f'short run in {args.run_precision}: {len(train_paths)} images, 2 '
        f'clusterings, {iters} iterations of {batch} (P x K = {num_ids} x '
        f'{k}, BN groups of {batch // NUM_REPLICAS} = {NUM_REPLICAS} '
        'emulated replicas), one pass over the clusters per epoch (a fixed '
        'count of iterations makes our sampler start a new permutation of '
        'the clusters inside a batch, which can hold a cluster twice: the '
        "reference's hard-instance loss needs exactly K per identity; "
        '--run-iters and --run-batch are not used), augmentations off '
        f'(three identical views), eps {args.run_eps}, lr warm-up epochs '
        '0-1 (3.5e-5, 6.65e-5) on both sides; normalisation in float64 on '
        f'both sides in the fp64 run; {run_size_note(args)}')


def _numpy_float64() -> types.ModuleType:
    """The numpy namespace of the reference script with ``float32`` ->
    ``float64``."""
    ns = types.ModuleType('numpy_float64')
    ns.__dict__.update({k: v for k, v in vars(np).items()
                        if not k.startswith('__')})
    ns.float32 = np.float64
    return ns


def _ragged_batches(rec, batch: int, k: int) -> List[Tuple[int, int]]:
    """(epoch, iteration) of the recorded batches with a repeated
    cluster."""
    out = []
    for e, (order, labels) in enumerate(zip(rec.batches, rec.labels)):
        for i in range(0, len(order), batch):
            lab = labels[np.asarray(order[i:i + batch])]
            _, counts = np.unique(lab, return_counts=True)
            if (counts != k).any():
                out.append((e + 1, i // batch + 1))
    return out


def _compare_run(report, ours_rec, ref_rec, ours, created, maps, ours_map,
                 ref_map, tol, compare_run) -> None:
    """The run-level entries: the generic ones (labels, cluster centres,
    losses, student weights, mAP) and ICE's camera proxies, loss terms and
    momentum encoder."""
    from .short_run import Recorder
    lv = 'run'
    # the generic comparison with the cluster centres as "the memory"
    o, r = Recorder(), Recorder()
    o.labels, r.labels = ours_rec.labels, ref_rec.labels
    o.memory = [m['centroids'] for m in ours_rec.memory]
    r.memory = [m['centroids'] for m in ref_rec.memory]
    o.losses, r.losses = ours_rec.losses, ref_rec.losses
    compare_run(report, o, r, ours, created[0], maps['student'], ours_map,
                ref_map, tol, memory_name='cluster proxies (centres)',
                weights_name='final student weights and BN buffers')
    for e, (a, b) in enumerate(zip(ours_rec.labels, ref_rec.labels)):
        if e >= min(len(ours_rec.memory), len(ref_rec.memory)):
            break
        name = f'camera proxies built by clustering {e + 1}'
        try:
            # our cluster c -> the reference cluster of most of its members
            mapping = {}
            for c in range(int(a.max()) + 1):
                vals, counts = np.unique(b[a == c], return_counts=True)
                mapping[c] = int(vals[np.argmax(counts)])
            mo, mr = ours_rec.memory[e], ref_rec.memory[e]
            row = {(int(cam), int(lab)): i for i, (cam, lab) in enumerate(
                zip(mr['proxy_cams'], mr['proxy_labels']))}
            idx = [row[(int(cam), mapping[int(lab)])] for cam, lab in zip(
                mo['proxy_cams'], mo['proxy_labels'])]
            if len(idx) != len(mr['proxies']):
                raise ValueError(f'{len(idx)} vs {len(mr["proxies"])} '
                                 'proxies')
            report.compare(lv, name, mo['proxies'], mr['proxies'][idx], tol,
                           f'{len(idx)} (camera, cluster) pairs matched')
        except (KeyError, ValueError) as err:
            report.record(lv, name, float('inf'), float('inf'), tol,
                          f'not comparable: {err}')
    report.compare(
        lv, f'loss terms of every iteration ({len(ref_rec.terms)} x 4)',
        [[t[k] for k in TERMS] for t in ours_rec.terms],
        [[t[k] for k in TERMS] for t in ref_rec.terms], tol,
        ', '.join(TERMS))
    diffs = state_diff(ours, created[1], maps['momentum'], PREFIX['momentum'])
    sd_r = created[1].state_dict()
    report.record(
        lv, 'final momentum encoder weights and BN buffers',
        max(float(v.abs().max()) for v in diffs.values()),
        max(float(v.abs().max()) /
            (float(sd_r[maps['momentum'][k]].abs().max()) or 1.0)
            for k, v in diffs.items()), tol,
        'worst tensor; relative to its own max |ref|; the mAP row is the '
        'momentum encoder (ICE deploys it)')


# ----------------------------------------------------------------------
# timing
def _timing(args, report, rt, maps) -> None:
    """Seconds per training iteration, ours (``train_step`` + EMA update)
    vs the reference (one ``ImageTrainer.train`` iteration: two student
    forwards, the losses, backward, Adam, three momentum forwards, EMA),
    the same random three-view batch, ResNet-50 at 256x128."""
    from .timing import (_Repeat, _rows, labelled, median_step_time,
                         random_batch)
    batch = args.timing_batch or NUM_IDS * NUM_INSTANCES
    per_gpu = min(batch, BN_GROUP)  # official: 4 GPUs x 8
    cfg = common.load_config(
        CONFIG, _switch_values({'model.bn_group_size': per_gpu,
                                'model.momentum_bn_group_size': per_gpu}))
    ours = common.build_model(cfg, args.seed)
    data, ref_views, labels, cams = random_batch(
        batch, NUM_INSTANCES, args.seed, views=3)
    labelled(ours, batch, labels, cams)
    optim = common.build_optimizer(cfg, ours)
    ours.train()

    def step_ours():
        ours.train_step(data, optim)
        ours.momentum_update()

    t_ours = median_step_time(step_ours, args.timing_iters)
    trainers = rt.import_module('ice.trainers')
    ref_s, ref_m = _ref_pair(rt.import_module('ice.models'), ours, maps)
    replicas = max(1, batch // per_gpu)
    dp_s, dp_m = CPUDataParallel(ref_s, replicas), CPUDataParallel(
        ref_m, replicas)
    params = [{'params': [v], 'lr': 3.5e-4, 'weight_decay': 5e-4}
              for _, v in dp_s.named_parameters() if v.requires_grad]
    opt = torch.optim.Adam(params)
    mem = ours.proxy_memory
    trainer = trainers.ImageTrainer(
        dp_s, dp_m, num_cluster=mem.num_clusters, **TRAINER_ARGS)
    loader = _Repeat((ref_views[0], ref_views[1], ref_views[2], labels,
                      cams))
    ref_mem = _ref_memory(mem)
    bank_labels = ours.pseudo_labels.numpy()
    t_ref = median_step_time(
        lambda: trainer.train(
            0, loader, opt, print_freq=10**6, train_iters=1,
            cams=cams.numpy(), all_pseudo_label=bank_labels, **ref_mem),
        args.timing_iters)
    _rows(report, args, batch, per_gpu, t_ours, t_ref)
