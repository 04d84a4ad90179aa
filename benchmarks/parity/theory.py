# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity of the "Theory" UDA baseline with lsongx/DomainAdaptiveReID.

Our side is ``configs/gds/theory-sgd_r50_duke2market.py`` (Theory's code:
semi triplet on pool5 and the FC-BN-ReLU embedding, SGD 0.9 without weight
decay, Theory's source-aware float16 re-ranking, eps from rho, the
#clusters x K epoch) on CUHK03 subsets: source = camera pair 2, target =
camera pair 1. The reference is the user's clone, imported with the shims
that its 2018 code needs on current torch and Python 3 (listed in the
report); the short run drives its own ``selftraining.py``.
"""
import argparse
import contextlib
import io
import os.path as osp
import sys
import tempfile
import types
from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import DBSCAN

from mmreid_usl.clustering import RhoDBSCANClusterer
from mmreid_usl.evaluation.functional import evaluate_rank
from mmreid_usl.structures import PseudoLabelResult
from . import common
from .data import make_subset, reference_lists
from .keymap import check_key_map, copy_weights, theory_key_map
from .report import ParityReport
from .shims import CPUDataParallel, ReferenceRuntime

CONFIG = 'configs/gds/theory-sgd_r50_duke2market.py'
#: Reference tensors its stage-3 forward never uses (torchvision's ImageNet
#: classifier, the source-id classifier).
IGNORE = ('base.fc.weight', 'base.fc.bias', 'classifier_x2.weight',
          'classifier_x2.bias')
K = 4


class _FloorDivInt(int):
    """``num_instances`` for Theory's ``TripletLoss``: Python 2 code,
    ``P = n / self.K`` then ``range(P)``; ``n / K`` of this int is ``n //
    K``."""

    def __rtruediv__(self, other):
        return other // int(self)


def _stub_modules(rt: ReferenceRuntime) -> None:
    """Optional dependencies the reference imports at package level but
    the compared code never calls (``h5py`` for its feature database,
    ``metric_learn`` for the non-Euclidean metrics)."""
    stubs = {'h5py': types.ModuleType('h5py')}
    ml = types.ModuleType('metric_learn')
    ml.__path__ = []  # a package, for `metric_learn.base_metric`
    for name in ('ITML_Supervised', 'LMNN', 'LSML_Supervised',
                 'SDML_Supervised', 'NCA', 'LFDA', 'RCA_Supervised'):
        setattr(ml, name, type(name, (), {}))
    base = types.ModuleType('metric_learn.base_metric')
    base.BaseMetricLearner = type('BaseMetricLearner', (), {})
    ml.base_metric = base
    stubs['metric_learn'] = ml
    stubs['metric_learn.base_metric'] = base
    for name, mod in stubs.items():
        if name not in sys.modules:
            rt.patch_item(
                sys.modules, name, mod,
                'stub modules `h5py` / `metric_learn` (imported by the '
                'reference package, never called by the compared code)')


def _py2_shims(rt: ReferenceRuntime) -> None:
    """Python 2 / torch 0.3 idioms of the reference."""
    cat = torch.cat

    def cat_0d(tensors, *args, **kwargs):
        tensors = list(tensors)
        if tensors and all(
                isinstance(t, torch.Tensor) and t.dim() == 0
                for t in tensors):
            tensors = [t.reshape(1) for t in tensors]
        return cat(tensors, *args, **kwargs)

    rt.patch(torch, 'cat', cat_0d,
             '`torch.cat` of 0-d tensors (torch 0.3 indexing gave 1-d ones) '
             '-> concatenated as 1-element tensors')
    getitem = torch.Tensor.__getitem__

    def getitem_0d(t, idx):
        if t.dim() == 0 and isinstance(idx, int) and idx == 0:
            return t
        return getitem(t, idx)

    rt.patch(torch.Tensor, '__getitem__', getitem_0d,
             '`loss.data[0]` of a 0-d tensor (torch 0.3) -> the tensor')


def _ref_model(rt, ours, key_map, num_classes: int = 632):
    """Theory's ResNet-50 (as selftraining.py builds it) with our
    weights."""
    models_mod = rt.import_module('reid.models')
    ref = models_mod.create('resnet50', num_classes=num_classes,
                            pretrained=False)
    copy_weights(ours, ref, key_map, ours_prefix=None, ignore=IGNORE)
    return ref


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


def run(args: argparse.Namespace, report: ParityReport) -> None:
    """All levels of the Theory parity run."""
    work = args.work_dir or tempfile.mkdtemp(prefix='parity_theory_')
    tgt = osp.join(work, 'subset')
    src = osp.join(work, 'subset_source')
    sizes = make_subset(args.data, tgt, args.num_train, args.num_test)
    sizes['source'] = make_subset(args.data, src, args.num_train, 0,
                                  cameras=(3, 4))['train']
    report.meta.update(config=CONFIG, subset=sizes)
    report.notes.append('target: CUHK03 camera pair 1 (cameras 1, 2); '
                        'source: camera pair 2 (cameras 3, 4)')
    cfg = _config(args, tgt, src)
    ours = common.build_model(cfg, args.seed)
    key_map = theory_key_map(
        k for k in ours.state_dict() if k.startswith('encoder.'))
    with ReferenceRuntime(args.reference, 'reid', args.device, 1) as rt:
        _stub_modules(rt)
        _py2_shims(rt)
        rt.torchvision_without_download(
            rt.import_module('reid.models.resnet'))
        ref = _ref_model(rt, ours, key_map)
        problems = check_key_map(
            {k: v for k, v in ours.state_dict().items() if k in key_map},
            ref.state_dict(), key_map, IGNORE)
        report.check(
            'components', 'weights: key map is a bijection', not problems,
            f'{len(key_map)} tensors; unused by the reference forward: '
            f'{", ".join(IGNORE)}' if not problems else '; '.join(problems))
        # raw pool5 of the subsets from the seeded model before any
        # forward in train mode: the components' clustering and the steps'
        # labels both start from them (extracted once)
        raw = _RawFeatures(cfg, args.seed)
        levels = dict(
            components=lambda: _components(args, report, rt, cfg, ours, ref,
                                           key_map, raw),
            steps=lambda: _steps(args, report, rt, cfg, key_map, raw),
            run=lambda: _short_run(args, report, rt, cfg, key_map, work,
                                   tgt, src),
        )
        common.run_levels(report, args.levels, levels)
        report.shims.extend(s for s in rt.applied if s not in report.shims)


def _config(args, tgt: str, src: str):
    cfg = common.load_config(CONFIG, {}, tgt)
    ref_loader = cfg.default_hooks.pseudo_label.reference_dataloader
    ref_loader.dataset = dict(
        type='ReIDFolderDataset',
        data_root=src,
        split='train',
        pipeline=ref_loader.dataset.pipeline)
    return cfg


# ----------------------------------------------------------------------
class _RawFeatures:
    """Raw pool5 of the target and source subsets from our seeded model
    of ``cfg`` (untrained, eval mode), extracted on first use."""

    def __init__(self, cfg, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self._feats = None

    def __call__(self):
        """``(target, source)`` raw pool5."""
        if self._feats is None:
            model = common.build_model(self.cfg, self.seed)
            self._feats = (_raw_pool5(
                model, common.build_dataset(self.cfg, 'cluster_dataloader')),
                           _raw_pool5(model, _source_set(self.cfg)))
        return self._feats


def _components(args, report, rt, cfg, ours, ref, key_map, raw) -> None:
    lv = 'components'
    target = common.build_dataset(cfg, 'cluster_dataloader')
    n_img = args.component_batch
    x = common.our_inputs(ours, target, range(n_img))
    # -- encoder: (pool5, embedding) in eval and train mode
    for mode in ('eval', 'train'):
        ours.train(mode == 'train')
        ref.train(mode == 'train')
        with torch.no_grad():
            p_o, e_o = ours.forward_two(x)
            p_r, e_r = ref(x)
        report.compare(lv, f'pool5 ({mode})', p_o, p_r, 1e-5)
        report.compare(lv, f'embedding ReLU(BN(FC)) ({mode})', e_o, e_r,
                       1e-5)
    sd_o, sd_r = ours.state_dict(), ref.state_dict()
    running = [k for k in key_map if 'running' in k]
    report.compare(
        lv, 'BN running statistics after one train forward',
        torch.cat([sd_o[k].flatten() for k in running]),
        torch.cat([sd_r[key_map[k]].flatten() for k in running]), 1e-5)
    # -- the triplet losses on a P x K batch of these features
    loss_mod = rt.import_module('reid.loss')
    labels = torch.arange(n_img) // K
    g = torch.Generator().manual_seed(args.seed)
    feats = torch.randn(n_img, 64, generator=g) * 2
    for mining, semi in (('semi', True), ('batch_hard', False)):
        crit = loss_mod.TripletLoss(0.5, _FloorDivInt(K), use_semi=semi)
        ours.loss_triplet.mining = mining
        q_o = feats.clone().requires_grad_(True)
        q_r = feats.clone().requires_grad_(True)
        l_o = ours.loss_triplet(q_o, labels)
        l_r, _ = crit(q_r, labels, 0)
        l_o.backward()
        l_r.backward()
        report.compare(lv, f'triplet value ({mining}, margin 0.5)', l_o,
                       l_r, 1e-5)
        report.compare(lv, f'triplet gradient ({mining})', q_o.grad,
                       q_r.grad, 1e-5)
    ours.loss_triplet.mining = 'semi'
    # -- the source-aware distance, eps from rho, DBSCAN
    rerank = rt.import_module('reid.rerank')
    ours.eval()
    raw_t, raw_s = raw()
    dist_cfg = dict(cfg.default_hooks.pseudo_label.labeler.distance)
    from mmreid_usl.registry import TASK_UTILS
    dist = TASK_UTILS.build(dist_cfg)
    d_o = dist(F.normalize(raw_t, dim=1), raw_features=raw_t,
               raw_reference_features=raw_s)
    with _quiet():
        d_r = rerank.re_ranking(raw_s.numpy(), raw_t.numpy(), k1=20, k2=6,
                                lambda_value=0.1)
    report.compare(lv, f'source-aware re-ranking distance (N={len(raw_t)}, '
                   f'{len(raw_s)} source images)', d_o, d_r, 0.0,
                   "ours: jaccard='theory_fp16'; every entry, exact")
    clusterer = RhoDBSCANClusterer(rho=1.6e-3, min_samples=4)
    lab_o = clusterer(dist=d_o)
    # the eps Theory computes inline in selftraining.py, restated: mean of
    # the smallest round(rho * M) non-zero upper-triangular entries
    tri = np.sort(np.triu(d_r, 1)[np.nonzero(np.triu(d_r, 1))])
    eps_r = tri[:int(np.round(1.6e-3 * tri.size))].mean()
    report.compare(lv, 'eps from rho = 1.6e-3', clusterer.eps, eps_r, 1e-12)
    lab_r = DBSCAN(eps=eps_r, min_samples=4,
                   metric='precomputed').fit_predict(d_r)
    report.compare_labels(lv, 'DBSCAN labels', lab_o, lab_r)
    # -- evaluation: raw pool5, squared Euclidean
    _evaluation(report, rt, cfg, ours)


def _source_set(cfg):
    from mmreid_usl.registry import DATASETS
    return DATASETS.build(
        dict(cfg.default_hooks.pseudo_label.reference_dataloader.dataset))


@torch.no_grad()
def _raw_pool5(model, dataset, batch_size: int = 64) -> torch.Tensor:
    """Raw (unnormalised) pool5 of every image in dataset order."""
    model.eval()
    out = []
    for s in range(0, len(dataset), batch_size):
        x = common.our_inputs(model, dataset,
                              range(s, min(s + batch_size, len(dataset))))
        out.append(model.extract_feat(x).float())
    return torch.cat(out)


def _evaluation(report, rt, cfg, ours) -> None:
    lv = 'components'
    ev = rt.import_module('reid.evaluators')
    test = common.build_dataset(cfg, 'test_dataloader')
    feats = _raw_pool5(ours, test)
    is_q = np.arange(len(test)) < test.num_query
    pids, cams = test.get_pids(), test.get_camids()
    names = [test.get_data_info(i)['img_path'] for i in range(len(test))]
    fdict = {n: f for n, f in zip(names, feats)}
    query = [(n, p, c) for n, p, c, q in zip(names, pids, cams, is_q) if q]
    gallery = [(n, p, c) for n, p, c, q in zip(names, pids, cams, is_q)
               if not q]
    distmat = ev.pairwise_distance(fdict, query, gallery)
    with _quiet():
        score = ev.evaluate_all(distmat, query=query, gallery=gallery)
    same = evaluate_rank(
        feats[is_q], feats[~is_q], pids[is_q], pids[~is_q], cams[is_q],
        cams[~is_q], dist_fn=lambda a, b: distmat[a:b].clone())
    own = evaluate_rank(feats[is_q], feats[~is_q], pids[is_q], pids[~is_q],
                        cams[is_q], cams[~is_q], normalize=False)
    report.compare(lv, 'mAP (same distance matrix)', same['mAP'], score.map,
                   1e-6)
    report.compare(lv, 'CMC ranks 1-10, Market-1501 protocol (same '
                   'distance matrix)', same['cmc'][:10],
                   score.market1501[:10], 1e-6)
    report.compare(
        lv, 'mAP (raw pool5, each side its squared Euclidean distance)',
        own['mAP'], score.map, 1e-3,
        'float32 rounding of the two distance formulas can swap near-tied '
        'gallery entries')


# ----------------------------------------------------------------------
def _steps(args, report, rt, cfg, key_map, raw) -> None:
    with rt.scoped():
        _steps_in(args, report, rt, cfg, key_map, raw)


def _steps_in(args, report, rt, cfg, key_map, raw) -> None:
    wide, dtype = common.step_precision(args, rt)
    trainers = rt.import_module('reid.trainers')
    loss_mod = rt.import_module('reid.loss')
    ours = common.build_model(cfg, args.seed)
    ref = _ref_model(rt, ours, key_map)
    ref_dp = CPUDataParallel(ref, 1)
    target = common.build_dataset(cfg, 'train_dataloader',
                                  'cluster_dataloader')
    raw_t, raw_s = raw()
    from mmreid_usl.registry import TASK_UTILS
    dist = TASK_UTILS.build(
        dict(cfg.default_hooks.pseudo_label.labeler.distance))
    labels = RhoDBSCANClusterer(rho=args.rho, min_samples=4)(
        dist=dist(F.normalize(raw_t, dim=1), raw_features=raw_t,
                  raw_reference_features=raw_s))
    result = PseudoLabelResult.from_labels(
        labels, {'student': F.normalize(raw_t, dim=1)},
        cluster_encoder='student')
    num_ids = args.step_batch // K
    if result.num_clusters < num_ids:
        raise RuntimeError(f'{result.num_clusters} clusters: too few for '
                           f'{num_ids} identities per batch')
    ours.to(dtype)
    ref.to(dtype)
    ours.data_preprocessor = common.CastInputs(ours.data_preprocessor,
                                               dtype)
    ours.set_pseudo_labels(result)
    batches = common.pk_batches(result.labels.numpy(), num_ids, K,
                                args.steps, args.seed)
    inputs = [common.our_inputs(ours, target, b) for b in batches]
    before = {k: v.detach().clone() for k, v in ours.state_dict().items()}
    optim, norms_o, grads_o, losses_o = common.our_train_steps(
        cfg, ours, target, batches)
    # reference: its Trainer (two semi triplets), its SGD
    crit = [loss_mod.TripletLoss(0.5, _FloorDivInt(K)) for _ in range(2)]
    opt_r = torch.optim.SGD(ref_dp.parameters(), lr=6e-5, momentum=0.9)
    norms_r: List[float] = []
    grads_r: Dict[str, torch.Tensor] = {}
    common.record_grads(opt_r, dict(ref.named_parameters()), norms_r,
                        grads_r)
    losses_r: List[float] = []
    forward = trainers.Trainer._forward

    def recording_forward(self, inputs_, targets, epoch):
        loss, prec = forward(self, inputs_, targets, epoch)
        losses_r.append(float(loss.detach()))
        return loss, prec

    rt.patch(trainers.Trainer, '_forward', recording_forward,
             'recording wrappers of the trainer / memory (values read, '
             'nothing changed)')
    trainer = trainers.Trainer(ref_dp, crit, print_freq=10**6)
    loader = [(x, [''] * len(x), result.labels[b], torch.zeros(len(x)))
              for x, b in zip(inputs, batches)]
    with _quiet():
        trainer.train(0, loader, opt_r)
    # our key map covers the encoder; Theory's unused classifiers have no
    # gradient and are not compared
    common.compare_steps(report, args, key_map, before, ours, ref, losses_o,
                         losses_r, norms_o, norms_r, grads_o, grads_r,
                         lr=6e-5)
    report.notes.append(
        f'steps level in {args.step_precision}: {len(batches)} SGD steps of '
        f'{args.step_batch} images (P x K = {num_ids} x {K}), semi triplet '
        'on pool5 + embedding')


# ----------------------------------------------------------------------
def _short_run(args, report, rt, cfg, key_map, work, tgt, src) -> None:
    from .short_run import short_run_theory
    with rt.scoped():
        short_run_theory(args, report, rt, cfg, key_map, work, tgt, src,
                         _ref_model, _FloorDivInt, K)


__all__ = ['run', 'reference_lists']
