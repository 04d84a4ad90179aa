# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity of Cluster Contrast with alibaba/cluster-contrast-reid.

Our side is ``configs/cluster_contrast/cluster-contrast_r50_market.py`` with
the switches in :data:`SWITCHES`; the reference is the user's clone, driven
through its own modules and, for the short run, its own training script
(``examples/cluster_contrast_train_usl.py``, ``main_worker``).
"""
import argparse
import os.path as osp
import tempfile
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import DBSCAN

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance
from mmreid_usl.evaluation.functional import evaluate_rank
from mmreid_usl.structures import PseudoLabelResult
from . import common
from .keymap import (check_key_map, copy_weights, resnet_encoder_key_map,
                     sub_state_dict)
from .report import ParityReport
from .shims import ReferenceRuntime, reference_script

CONFIG = 'configs/cluster_contrast/cluster-contrast_r50_market.py'
#: Our switches that select the reference behaviour, with why.
SWITCHES = {
    'model.bn_running_stats': (
        'first_group',
        'BN running statistics from the first of the 4 DataParallel '
        "replicas only (default 'every_group')"),
}
#: Images per BN group in the harness (the official 64 per GPU needs a
#: batch of 256, which does not fit a CPU's memory for the backward pass).
BN_GROUP = 8
NUM_REPLICAS = 4
TRAIN_SCRIPT = 'examples/cluster_contrast_train_usl.py'


def _switch_values(extra: Dict[str, object] = None) -> Dict[str, object]:
    values = {k: v for k, (v, _) in SWITCHES.items()}
    values['model.bn_group_size'] = BN_GROUP
    values.update(extra or {})
    return values


def _ref_model(models_mod, ours, key_map):
    """The reference ResNet-50 (GeM, BNNeck, norm=True as its script
    builds it) carrying our weights."""
    ref = models_mod.create(
        'resnet50',
        num_features=0,
        norm=True,
        dropout=0,
        num_classes=0,
        pooling_type='gem')
    copy_weights(ours, ref, key_map)
    return ref


def run(args: argparse.Namespace, report: ParityReport) -> None:
    """All levels of the Cluster Contrast parity run."""
    work = args.work_dir or tempfile.mkdtemp(prefix='parity_cc_')
    subset = osp.join(work, 'subset')
    sizes = common_subset(args, subset)
    report.meta.update(config=CONFIG, subset=sizes)
    report.switches.update({k: v for k, (v, _) in SWITCHES.items()})
    report.switches['model.bn_group_size'] = BN_GROUP
    report.notes.append(
        f'BN groups of {BN_GROUP} images = {NUM_REPLICAS} emulated '
        'DataParallel replicas (the official runs use 4 GPUs x 64; a '
        'CPU cannot hold the backward pass of 256 images of ResNet-50).')
    cfg = common.load_config(CONFIG, _switch_values(), subset)
    ours = common.build_model(cfg, args.seed)
    key_map = resnet_encoder_key_map(
        sub_state_dict(ours, 'encoder.').keys())
    with ReferenceRuntime(args.reference, 'clustercontrast', args.device,
                          NUM_REPLICAS) as rt:
        models_mod = rt.import_module('clustercontrast.models')
        rt.torchvision_without_download(
            rt.import_module('clustercontrast.models.resnet'))
        ref = _ref_model(models_mod, ours, key_map)
        problems = check_key_map(
            sub_state_dict(ours, 'encoder.'), ref.state_dict(), key_map)
        report.check(
            'components', 'weights: key map is a bijection', not problems,
            f'{len(key_map)} tensors' if not problems else
            '; '.join(problems))
        levels = dict(
            components=lambda: _components(args, report, rt, cfg, ours, ref,
                                           key_map, subset),
            steps=lambda: _steps(args, report, rt, cfg, key_map, subset),
            run=lambda: _short_run(args, report, rt, key_map, subset, work),
            timing=lambda: _timing(args, report, rt, key_map))
        common.run_levels(report, args.levels, levels)
        report.shims.extend(s for s in rt.applied if s not in report.shims)


def common_subset(args, subset: str) -> dict:
    from .data import make_subset
    return make_subset(args.data, subset, args.num_train, args.num_test)


# ----------------------------------------------------------------------
# components
def _ref_inputs(rt, dataset, indices, height=256, width=128):
    """The reference's test-pipeline tensors of ``indices``."""
    script = _script(rt)
    loader = script.get_test_loader(
        dataset, height, width, len(indices), 0,
        testset=[dataset.train[i] for i in indices])
    imgs = next(iter(loader))[0]
    return imgs


def _script(rt):
    """The reference training script as a module (its main block not
    run)."""
    return reference_script(rt, 'cc_train_usl', TRAIN_SCRIPT)


def _components(args, report, rt, cfg, ours, ref, key_map, subset) -> None:
    from .data import ReferenceDataset
    lv = 'components'
    ref_data = ReferenceDataset(subset)
    train_set = common.build_dataset(cfg, 'cluster_dataloader')
    n_img = args.component_batch
    idx = list(range(n_img))
    # -- inputs: our pipeline + data preprocessor vs torchvision's
    x_ref = _ref_inputs(rt, ref_data, idx)
    x_ours = common.our_inputs(ours, train_set, idx)
    report.compare(
        lv, 'input tensors (test pipeline, decode + resize + normalise)',
        x_ours, x_ref, 1e-5,
        'our default pipeline (cv2 decode, PIL bicubic resize) vs PIL '
        'decode + torchvision bicubic resize')
    x = x_ref
    # -- eval mode
    ours.eval()
    ref.eval()
    with torch.no_grad():
        pooled_o = ours.encoder.pooling(ours.encoder.backbone(x))[-1]
        pooled_r = ref.gap(ref.base(x)).flatten(1)
        report.compare(lv, 'pooled feature (eval, GeM)',
                       pooled_o.flatten(1), pooled_r, 1e-5)
        f_o = F.normalize(ours.extract_feat(x), dim=1)
        f_r = ref(x)
        report.compare(lv, 'encoder output (eval, L2-normalised)', f_o, f_r,
                       1e-5)
    # -- train mode: BN groups = DataParallel replicas
    ours.train()
    ref_dp = rt_dp(ref)
    ref_dp.train()
    x_t = x.clone().requires_grad_(False)
    raw_o = ours.student_forward(x_t)
    out_r = ref_dp(x_t)
    report.compare(lv, 'encoder output (train, BN groups, L2-normalised)',
                   F.normalize(raw_o, dim=1), out_r, 1e-5)
    sd_o, sd_r = ours.state_dict(), ref.state_dict()
    running = [k for k in key_map if 'running' in k]
    report.compare(
        lv, 'BN running statistics after one train forward',
        torch.cat([sd_o[k].flatten() for k in running]),
        torch.cat([sd_r[key_map[k]].flatten() for k in running]), 1e-5,
        'every running_mean / running_var; ours with '
        f"{SWITCHES['model.bn_running_stats'][0]!r}")
    ours.zero_grad()
    ref.zero_grad()
    # -- memory + loss on one labelled batch
    _memory_and_loss(report, rt, ours, ref, raw_o, out_r, x_t)
    # -- clustering
    feats = common.extract(ours, train_set)
    _clustering(args, report, rt, feats)
    # -- evaluation
    _evaluation(report, rt, cfg, ours)
    # -- the default's deviation: BN running statistics of every group
    _bn_deviation(report, cfg, ours, x)


def rt_dp(module):
    """DataParallel as the reference script wraps its model (shimmed)."""
    import torch.nn as nn
    return nn.DataParallel(module)


def _labels_for(n: int, num_ids: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_ids, (n, ), generator=g)


def _memory_and_loss(report, rt, ours, ref, raw_o, out_r, x) -> None:
    """Memory initialisation, ClusterNCE value and gradient, and the
    memory update on the same batch, for every update mode both sides
    have (the official momentum update and the paper's hard update)."""
    lv = 'components'
    cm = rt.import_module('clustercontrast.models.cm')
    n, dim = raw_o.shape
    labels = _labels_for(n, 4, 0)
    bank = F.normalize(raw_o.detach(), dim=1)
    result = PseudoLabelResult.from_labels(
        labels.numpy(), {'student': bank}, cluster_encoder='student')
    for mode, use_hard in (('momentum', False), ('hard', True)):
        mem_o = ours.memory.__class__(
            feat_dim=dim, old_weight=0.1, update_mode=mode)
        mem_o.reset(result)
        # the reference memory as its script fills it: normalised means
        centers = torch.stack([bank[labels == c].mean(0) for c in range(4)])
        mem_r = cm.ClusterMemory(dim, 4, temp=0.05, momentum=0.1,
                                 use_hard=use_hard)
        mem_r.features = F.normalize(centers, dim=1)
        if mode == 'momentum':
            report.compare(lv, 'cluster memory initialisation (means)',
                           mem_o.features, mem_r.features, 1e-5)
        q_o = raw_o.detach().clone().requires_grad_(True)
        q_r = out_r.detach().clone().requires_grad_(True)
        # ours: normalise, ClusterNCE, update; reference: its forward
        # normalises the (already normalised) output and updates in backward
        loss_o = ours.loss_cluster(
            F.normalize(q_o, dim=1), mem_o.features, labels)
        mem_o.update(F.normalize(q_o.detach(), dim=1), labels)
        loss_r = mem_r(q_r, labels)
        loss_o.backward()
        loss_r.backward()
        # the reference feeds the memory normalised features: compare the
        # gradients w.r.t. the normalised feature on both sides
        g_o = _grad_wrt_normalised(q_o)
        report.compare(lv, f'ClusterNCE value ({mode} memory)', loss_o,
                       loss_r, 1e-5)
        report.compare(lv, f'ClusterNCE gradient w.r.t. the feature ({mode})',
                       g_o, q_r.grad, 1e-5,
                       'ours projected on the tangent space of the '
                       'normalisation (the reference differentiates its '
                       'already normalised output)')
        report.compare(lv, f'memory after one update ({mode})',
                       mem_o.features, mem_r.features, 1e-5)


def _grad_wrt_normalised(q: torch.Tensor) -> torch.Tensor:
    """Gradient w.r.t. the normalised feature, from the gradient w.r.t.
    the raw one: ``g_raw = (I - u u^T) g_u / ||q||`` projected back (the
    radial part of ``g_u`` is invisible to the loss, so both sides are
    compared on the tangent part)."""
    u = F.normalize(q.detach(), dim=1)
    g = q.grad * q.detach().norm(dim=1, keepdim=True)
    return g - (g * u).sum(1, keepdim=True) * u


def _clustering(args, report, rt, feats: torch.Tensor) -> None:
    """Jaccard distance entries and DBSCAN labels from the same
    features (real ones of the subset and synthetic clustered ones)."""
    lv = 'components'
    rerank = rt.import_module('clustercontrast.utils.faiss_rerank')
    sets = {'real': feats}
    g = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(40, 64, generator=g), dim=1)
    synth = F.normalize(
        centres.repeat_interleave(12, 0) +
        0.35 * torch.randn(480, 64, generator=g) / 8,
        dim=1)
    sets['synthetic'] = synth
    for name, x in sets.items():
        n = len(x)
        ours_d = JaccardDistance(k1=30, k2=6, knn_backend='faiss')(x)
        dense_o = common.jaccard_dense(ours_d, n)
        ref_d = rerank.compute_jaccard_distance(
            x, k1=30, k2=6, print_flag=False, search_option=3)
        report.compare(lv, f'Jaccard distance ({name} features, N={n})',
                       dense_o, ref_d, 1e-5,
                       'unstored pairs of our sparse matrix = 1')
        eps = args.eps if name == 'real' else 0.6
        lab_o = DBSCANClusterer(eps=eps, min_samples=4)(dist=ours_d)
        lab_r = DBSCAN(
            eps=eps, min_samples=4, metric='precomputed',
            n_jobs=-1).fit_predict(ref_d)
        report.compare_labels(lv, f'DBSCAN labels ({name}, eps {eps})',
                              lab_o, lab_r)


def _evaluation(report, rt, cfg, ours) -> None:
    """mAP and CMC from the same features of the test subset."""
    lv = 'components'
    ev = rt.import_module('clustercontrast.evaluators')
    test = common.build_dataset(cfg, 'test_dataloader')
    feats = common.extract(ours, test)
    is_q = np.arange(len(test)) < test.num_query
    pids, cams = test.get_pids(), test.get_camids()
    # a sharper, partly random feature so the metrics are not trivial
    res = evaluate_rank(feats[is_q], feats[~is_q], pids[is_q], pids[~is_q],
                        cams[is_q], cams[~is_q])
    distmat, qf, gf, query, gallery = common.reference_pairwise(
        ev, test, feats, pids, cams, is_q)
    qf, gf = torch.as_tensor(qf), torch.as_tensor(gf)
    cmc, m_ap = ev.evaluate_all(
        qf, gf, distmat, query=query, gallery=gallery, cmc_flag=True)
    same = evaluate_rank(
        qf, gf, pids[is_q], pids[~is_q], cams[is_q], cams[~is_q],
        dist_fn=lambda a, b: distmat[a:b].clone())
    report.compare(lv, 'mAP (same distance matrix)', same['mAP'], m_ap,
                   1e-6)
    report.compare(lv, 'CMC ranks 1-10 (same distance matrix)',
                   same['cmc'][:10], cmc[:10], 1e-6)
    report.compare(
        lv, 'mAP (same features, each side its distance)', res['mAP'], m_ap,
        1e-3, 'float32 rounding of the two distance formulas can swap '
        'near-tied gallery entries')
    report.compare(lv, 'CMC ranks 1-10 (same features, each side its '
                   'distance)', res['cmc'][:10], cmc[:10], 1e-3)
    report.notes.append('mINP has no reference in Cluster Contrast\'s '
                        'evaluator; not compared.')


def _bn_deviation(report, cfg, ours, x) -> None:
    """Our default (every group moves the BN statistics) against the
    DataParallel behaviour, after one train forward of the same batch."""
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    out = common.running_var_by_bn_mode(ours, x, state)
    ours.load_state_dict(state)
    ours.bn_running_stats = 'first_group'
    common.report_bn_deviation(
        report, out, 'every group moves the statistics (4 updates per step '
        'instead of 1); changes eval features only')


# ----------------------------------------------------------------------
# training steps
def _steps(args, report, rt, cfg, key_map, subset) -> None:
    """N optimiser steps from the same weights on the same batches."""
    with rt.scoped():
        _steps_in(args, report, rt, cfg, key_map, subset)


def _steps_in(args, report, rt, cfg, key_map, subset) -> None:
    lv = 'steps'
    wide, dtype = common.step_precision(args, rt)
    trainers = rt.import_module('clustercontrast.trainers')
    cm = rt.import_module('clustercontrast.models.cm')
    models_mod = rt.import_module('clustercontrast.models')
    ours = common.build_model(cfg, args.seed)
    ref = _ref_model(models_mod, ours, key_map)
    ref_dp = rt_dp(ref)
    train_set = common.build_dataset(cfg, 'train_dataloader',
                                     'cluster_dataloader')
    # labels: a clustering of the initial features (both sides get the
    # same), memories initialised from the same bank
    feats = common.extract(ours, train_set)
    labels = DBSCANClusterer(eps=args.eps, min_samples=4)(
        dist=JaccardDistance(k1=30, k2=6)(feats))
    ours.to(dtype)
    ref.to(dtype)
    ours.data_preprocessor = common.CastInputs(ours.data_preprocessor,
                                               dtype)
    result = PseudoLabelResult.from_labels(
        labels, {'student': feats.to(dtype)}, cluster_encoder='student')
    ours.set_pseudo_labels(result)
    num_ids = args.step_batch // 4
    if result.num_clusters < num_ids:
        raise RuntimeError(
            f'{result.num_clusters} clusters on the subset: too few for '
            f'{num_ids} identities per batch; raise --eps or --num-train.')
    batches = common.pk_batches(result.labels.numpy(), num_ids, 4,
                                args.steps, args.seed)
    mem_r = cm.ClusterMemory(
        2048, result.num_clusters, temp=0.05, momentum=0.1, use_hard=False)
    mem_r.features = ours.memory.features.clone()
    before = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    # the same input tensors on both sides (their equality through the two
    # pipelines is a component check): our pipeline's, in float32, cast to
    # the precision of the run
    inputs = [common.our_inputs(ours, train_set, b) for b in batches]
    # ours: the Runner's train_step with the config's optimiser wrapper
    optim, norms_o, grads_o, losses_o = common.our_train_steps(
        cfg, ours, train_set, batches)
    # reference: its trainer, its optimiser (one param group per tensor)
    params = [{'params': [v]} for _, v in ref_dp.named_parameters()
              if v.requires_grad]
    opt_r = torch.optim.Adam(params, lr=3.5e-4, weight_decay=5e-4)
    norms_r: List[float] = []
    grads_r: Dict[str, torch.Tensor] = {}
    common.record_grads(opt_r, dict(ref.named_parameters()), norms_r,
                        grads_r)
    losses_r = _record_loss(mem_r)
    trainer = trainers.ClusterContrastTrainer(ref_dp, mem_r)
    loader = _FixedLoader(inputs, [result.labels[b] for b in batches])
    trainer.train(0, loader, opt_r, print_freq=10**6,
                  train_iters=len(batches))
    common.compare_steps(report, args, key_map, before, ours, ref,
                         losses_o, losses_r, norms_o, norms_r, grads_o,
                         grads_r, lr=3.5e-4)
    _, tol_n = common.STEP_TOLS[args.step_precision]
    rows = (ours.memory.features - mem_r.features).norm(dim=1).max()
    report.record(lv, f'cluster memory after {len(batches)} steps',
                  float((ours.memory.features - mem_r.features).abs().max()),
                  float(rows), tol_n,
                  'max_rel: largest L2 distance between matching (unit) '
                  'rows')
    report.notes.append(
        f'steps level in {args.step_precision}: {len(batches)} steps of '
        f'{args.step_batch} images (P x K = {num_ids} x 4), both sides cast '
        'to this precision after the weights were copied; inputs = our '
        'pipeline\'s tensors on both sides')


def _record_loss(mem) -> List[float]:
    store: List[float] = []
    forward = mem.forward

    def wrapped(inputs, targets):
        loss = forward(inputs, targets)
        store.append(float(loss))
        return loss

    mem.forward = wrapped
    return store


class _FixedLoader:
    """The reference trainer's IterLoader interface over fixed batches
    (images, pseudo-labels)."""

    def __init__(self, inputs, labels) -> None:
        self.inputs, self.labels = inputs, labels
        self.i = 0

    def __len__(self) -> int:
        return len(self.inputs)

    def next(self):
        imgs, pids = self.inputs[self.i], self.labels[self.i]
        self.i += 1
        n = len(imgs)
        return imgs, [''] * n, pids, torch.zeros(n), torch.arange(n)


# ----------------------------------------------------------------------
# short run
def _short_run(args, report, rt, key_map, subset, work) -> None:
    from .short_run import short_run_cluster_contrast
    with rt.scoped():
        short_run_cluster_contrast(args, report, rt, key_map, subset, work,
                                   _switch_values, CONFIG, _script(rt))


# ----------------------------------------------------------------------
# timing
def _timing(args, report, rt, key_map) -> None:
    """Seconds per training iteration, ours vs the reference, same batch
    of random images, ResNet-50 at 256x128 (no data loading on either
    side)."""
    from .timing import time_cluster_contrast
    time_cluster_contrast(args, report, rt, key_map, CONFIG,
                          _switch_values, _ref_model)
