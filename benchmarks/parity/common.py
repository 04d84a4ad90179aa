# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Our side of a parity run: the model of a named config with switches, its
data on the subset, its features and training steps, and the helpers both
sides share (seeding, fixed batch orders, timing)."""
import copy
import random
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

from mmreid_usl.registry import DATASETS, MODELS
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=True)
# the harness prints its own tables; mmengine's INFO lines (weight
# initialisation of every tensor, ...) would bury them
MMLogger.get_instance('parity', log_level='WARNING')


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_config(config: str, switches: Dict[str, object],
                data_root: Optional[str] = None) -> Config:
    """The config with the parity switches merged (``--cfg-options``
    style keys), ImageNet loading off (the weights are copied to both
    sides) and every dataset pointed at the subset folder."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(switches))
    cfg.model.encoder.backbone.init_cfg = None
    if data_root is not None:
        for key in ('train_dataloader', 'cluster_dataloader',
                    'val_dataloader', 'test_dataloader'):
            if key in cfg:
                ds = cfg[key].dataset
                keep = {'split', 'pipeline'}
                for k in list(ds.keys()):
                    if k not in keep:
                        ds.pop(k)
                ds.update(type='ReIDFolderDataset', data_root=data_root)
    return cfg


def build_model(cfg: Config, seed: int = 0) -> torch.nn.Module:
    """Our model of ``cfg`` with seeded random weights."""
    seed_all(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def build_dataset(cfg: Config, loader: str, pipeline_of: str = None):
    """The dataset of ``cfg[loader]``; ``pipeline_of`` takes the pipeline
    of another loader (e.g. the test pipeline for training with the
    augmentations off)."""
    ds_cfg = copy.deepcopy(cfg[loader].dataset)
    if pipeline_of is not None:
        ds_cfg.pipeline = copy.deepcopy(cfg[pipeline_of].dataset.pipeline)
    return DATASETS.build(ds_cfg)


def collate(dataset, indices: Sequence[int]) -> dict:
    """One batch of ``dataset`` in the given order, as our loaders give
    it."""
    return default_collate([dataset[int(i)] for i in indices])


@torch.no_grad()
def our_inputs(model, dataset, indices: Sequence[int]) -> torch.Tensor:
    """Normalised input tensors of our pipeline + data preprocessor."""
    data = model.data_preprocessor(collate(dataset, indices), False)
    return data['inputs']


@torch.no_grad()
def extract(model, dataset, source: str = 'student',
            batch_size: int = 64) -> torch.Tensor:
    """L2-normalised eval features of every image, in dataset order."""
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        x = our_inputs(model, dataset, idx)
        out.append(F.normalize(model.extract_feat(x, source).float(), dim=1))
    model.train(was)
    return torch.cat(out)


def build_optimizer(cfg: Config, model: torch.nn.Module):
    """Our optimiser wrapper of ``cfg`` (the one the Runner builds)."""
    return build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def pk_batches(labels: np.ndarray, num_ids: int, num_instances: int,
               num_batches: int, seed: int) -> List[List[int]]:
    """A fixed order of P×K batches over labelled samples (outliers
    skipped), the same for both sides: ``num_ids`` clusters per batch,
    ``num_instances`` samples each (drawn with replacement only when a
    cluster is smaller)."""
    rng = np.random.default_rng(seed)
    clusters = [np.flatnonzero(labels == c) for c in np.unique(labels[
        labels >= 0])]
    batches = []
    for _ in range(num_batches):
        chosen = rng.choice(len(clusters), num_ids, replace=False)
        batch = []
        for c in chosen:
            members = clusters[c]
            batch += rng.choice(
                members,
                num_instances,
                replace=len(members) < num_instances).tolist()
        batches.append(batch)
    return batches


def grad_norm(params: Sequence[torch.nn.Parameter]) -> float:
    """L2 norm of all gradients (the value clip_grad_norm_ would see)."""
    sq = [p.grad.detach().double().pow(2).sum() for p in params
          if p.grad is not None]
    return float(torch.stack(sq).sum().sqrt()) if sq else 0.0


def record_grads(optimizer: torch.optim.Optimizer, named: Dict[str, object],
                 norms: List[float],
                 first: Dict[str, torch.Tensor]) -> Callable[[], None]:
    """Record the gradient norm before every ``optimizer.step`` and a copy
    of every gradient (by parameter name) before the first one; returns the
    function that undoes the wrap.

    Args:
        optimizer: The optimiser whose ``step`` is wrapped.
        named (dict): ``name -> parameter`` of the model.
        norms (list): Receives one norm per step.
        first (dict): Receives ``name -> gradient`` of the first step.
    """
    step = optimizer.step
    params = [p for g in optimizer.param_groups for p in g['params']]

    def wrapped(*args, **kwargs):
        norms.append(grad_norm(params))
        if not first:
            first.update({
                k: p.grad.detach().clone()
                for k, p in named.items() if p.grad is not None
            })
        return step(*args, **kwargs)

    optimizer.step = wrapped

    def undo():
        optimizer.step = step

    return undo


def reference_pairwise(ev, dataset, feats, pids, cams, is_q):
    """The reference evaluator's ``pairwise_distance`` of ``feats``, with
    its open-reid style ``(path, pid, cam)`` query and gallery lists.

    Returns:
        tuple: ``(distmat, qf, gf, query, gallery)``.
    """
    names = [dataset.get_data_info(i)['img_path']
             for i in range(len(dataset))]
    fdict = {n: f for n, f in zip(names, feats)}
    query = [(n, p, c) for n, p, c, q in zip(names, pids, cams, is_q) if q]
    gallery = [(n, p, c) for n, p, c, q in zip(names, pids, cams, is_q)
               if not q]
    distmat, qf, gf = ev.pairwise_distance(fdict, query, gallery)
    return distmat, qf, gf, query, gallery


def step_precision(args, rt):
    """``(wide, dtype)`` of the steps level (``--step-precision``); in
    float64 the reference's CUDA shims cast to float64 as well."""
    wide = args.step_precision == 'fp64'
    if wide:
        rt.cuda_shims(torch.float64)
    return wide, torch.float64 if wide else torch.float32


def our_train_steps(cfg: Config, ours: torch.nn.Module, dataset,
                    batches: Sequence[Sequence[int]]):
    """Our side of the steps level: the Runner's ``train_step`` with the
    config's optimiser wrapper on every batch.

    Returns:
        tuple: ``(optim_wrapper, norms, first_grads, losses)``: the gradient
        norm before every step, the gradients of the first step (by
        parameter name) and the total loss of every step.
    """
    optim = build_optimizer(cfg, ours)
    norms: List[float] = []
    grads: Dict[str, torch.Tensor] = {}
    record_grads(optim.optimizer, dict(ours.named_parameters()), norms, grads)
    ours.train()
    losses = []
    for b in batches:
        log = ours.train_step(collate(dataset, b), optim)
        losses.append(float(log['loss'].detach()))
    return optim, norms, grads, losses


def running_var_by_bn_mode(model: torch.nn.Module, x: torch.Tensor,
                           state: Dict[str, torch.Tensor],
                           prefix: str = '') -> Dict[str, torch.Tensor]:
    """The BN ``running_var`` buffers (keys starting with ``prefix``) after
    one student train forward of ``x`` from ``state``, with every BN group
    moving the statistics (``'every_group'``, our default) and with the first
    group only (``'first_group'``, DataParallel)."""
    out = {}
    for mode in ('every_group', 'first_group'):
        model.load_state_dict(state)
        model.bn_running_stats = mode
        model.train()
        with torch.no_grad():
            model.student_forward(x)
        out[mode] = torch.cat([
            v.flatten() for k, v in model.state_dict().items()
            if k.startswith(prefix) and 'running_var' in k
        ])
    return out


def report_bn_deviation(report, out: Dict[str, torch.Tensor],
                        note: str) -> None:
    """The deviation of our BN default, from
    :func:`running_var_by_bn_mode`'s buffers: their max relative
    difference."""
    rel = float((out['every_group'] - out['first_group']).abs().max() /
                out['first_group'].abs().max())
    report.deviation(
        'BN running statistics of grouped forwards',
        "model.bn_running_stats='first_group'",
        'max rel. diff. of running_var after one train forward', rel, 0.0,
        note)


def patch_jaccard_faiss_cpu(rt, script) -> None:
    """The reference's ``compute_jaccard_distance`` on faiss's CPU exact
    search, on float32 features (faiss is float32-only)."""
    jaccard = script.compute_jaccard_distance

    def jaccard_cpu(features, *a, **kw):
        # faiss is float32-only: the float64 check clusters float32
        # features, as the official float32 runs do
        return jaccard(features.float(), *a, search_option=3, **kw)

    rt.patch(script, 'compute_jaccard_distance', jaccard_cpu,
             'faiss GPU kNN (search_option=0) -> faiss CPU IndexFlatL2 '
             '(search_option=3, exact as well), on float32 features')


def update_diff(before: Dict[str, torch.Tensor],
                ours: Dict[str, torch.Tensor], ref: Dict[str, torch.Tensor],
                key_map: Dict[str, str]) -> Dict[str, float]:
    """How far our parameter updates are from the reference's.

    ``before`` holds the common starting values (our names), ``ours`` and
    ``ref`` the values after the steps. Returns ``rel_l2`` =
    ``||Δours - Δref||₂ / ||Δref||₂`` over all mapped tensors, ``max_abs``
    = the largest coordinate difference, and ``max_update`` = the largest
    reference update (Adam moves a coordinate by at most ~lr per step, and
    by exactly ±lr at the first step, whatever the size of its gradient:
    a coordinate whose gradient is at the float32 noise level of either
    side moves by ±lr on each, which ``rel_l2`` weighs by its share).
    """
    num = den = 0.0
    max_abs = max_update = 0.0
    for k, t in key_map.items():
        if k not in before:
            continue
        d_o = ours[k].double() - before[k].double()
        d_r = ref[t].double() - before[k].double()
        num += float((d_o - d_r).pow(2).sum())
        den += float(d_r.pow(2).sum())
        max_abs = max(max_abs, float((d_o - d_r).abs().max()))
        max_update = max(max_update, float(d_r.abs().max()))
    return dict(
        rel_l2=(num**0.5) / (den**0.5) if den > 0 else float(num > 0),
        max_abs=max_abs,
        max_update=max_update)


def time_per_iter(step: Callable[[], None], iters: int,
                  warmup: int = 1) -> float:
    """Median wall seconds of ``step()`` over ``iters`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def jaccard_dense(sparse_dist, n: int) -> np.ndarray:
    """Our sparse Jaccard distance as the dense matrix of the reference
    (unstored pairs = 1, the value of pairs whose sets do not overlap)."""
    dense = np.ones((n, n), dtype=np.float64)
    coo = sparse_dist.tocoo()
    dense[coo.row, coo.col] = coo.data
    return dense


class CastInputs(torch.nn.Module):
    """Our data preprocessor, its output cast to ``dtype`` (a float64 model
    for the exactness check)."""

    def __init__(self, preprocessor: torch.nn.Module,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        self.dtype = dtype

    def forward(self, data: dict, training: bool = False) -> dict:
        out = self.preprocessor(data, training)
        out['inputs'] = out['inputs'].to(self.dtype)
        return out


class Float64Inputs(torch.nn.Module):
    """Our data preprocessor's arithmetic (BGR -> RGB, ``(x - mean) /
    std`` on 0-255 pixels) in float64, for the float64 short run: both
    pipelines then normalise in float64, which the float32 preprocessors do
    not (they differ by float32 rounding, ~2e-7, which Adam amplifies).
    Single-view ``(B, 3, H, W)`` and multi-view (a list of V such) batches.
    """

    def __init__(self, preprocessor: torch.nn.Module, mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        # the config's values: the preprocessor's buffers are float32, and
        # 123.675 in float32 is 123.675003..., a 2e-8 relative offset
        self.mean = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        if getattr(self.preprocessor, '_channel_conversion', False):
            x = x.flip(1)
        return (x - self.mean) / self.std

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            if isinstance(inputs[0], torch.Tensor) and inputs[0].dim() == 3:
                x = self._one(torch.stack(list(inputs)))
            else:
                x = torch.stack([self._one(v) for v in inputs])
        else:
            x = self._one(inputs)
        return dict(inputs=x, data_samples=data['data_samples'])


#: Tolerances of the steps level per precision: (one operation / step 1,
#: accumulated over the steps). float32: train-mode BN over groups of 8
#: amplifies rounding to ~1e-6 and Adam turns any gradient sign at the
#: noise level into a +-lr move; float64 leaves only the summation order.
STEP_TOLS = {'fp64': (1e-10, 1e-8), 'fp32': (1e-4, 1e-2)}


def compare_steps(report, args, key_map, before, ours, ref, losses_o,
                  losses_r, norms_o, norms_r, grads_o, grads_r,
                  lr: float) -> None:
    """The steps-level entries shared by the methods."""
    lv = 'steps'
    n = len(losses_r)
    tol1, tol_n = STEP_TOLS[args.step_precision]
    report.compare(lv, 'loss, step 1', losses_o[0], losses_r[0], tol1)
    if n > 1:
        report.compare(lv, f'loss, steps 2-{n}', losses_o[1:], losses_r[1:],
                       tol_n)
    report.compare(lv, 'gradient norm, step 1', norms_o[0], norms_r[0],
                   tol1)
    mapped = [(grads_o[k], grads_r[t]) for k, t in key_map.items()
              if k in grads_o and t in grads_r]
    report.check(
        lv, 'parameters with a gradient: same set on both sides',
        len(mapped) == len(grads_o) == len(grads_r),
        f'{len(mapped)} mapped, {len(grads_o)} ours, {len(grads_r)} '
        'reference')
    report.compare(
        lv, 'every gradient, step 1 (relative to the largest)',
        torch.cat([a.flatten() for a, _ in mapped]),
        torch.cat([b.flatten() for _, b in mapped]), tol1)
    if n > 1:
        report.compare(lv, f'gradient norms, steps 2-{n}', norms_o[1:],
                       norms_r[1:], tol_n)
    sd_o, sd_r = ours.state_dict(), ref.state_dict()
    params = {k: t for k, t in key_map.items()
              if 'running' not in k and 'num_batches' not in k}
    upd = update_diff(before, sd_o, sd_r, params)
    report.record(
        lv, f'parameter updates after {n} steps', upd['max_abs'],
        upd['rel_l2'], tol_n,
        f"max_rel = ||Δours - Δref||₂ / ||Δref||₂; largest update "
        f"{upd['max_update']:.3g} (lr {lr:g}), largest "
        'coordinate difference = max_abs')
    buffers = [k for k in key_map if 'running' in k]
    report.compare(
        lv, f'BN running statistics after {n} steps',
        torch.cat([sd_o[k].flatten() for k in buffers]),
        torch.cat([sd_r[key_map[k]].flatten() for k in buffers]), tol_n)


def run_levels(report, wanted: Sequence[str],
               levels: Dict[str, Callable[[], None]]) -> None:
    """Run the wanted levels in order; a level that raises is recorded as
    a failed entry naming the error, and the next level still runs."""
    for name, fn in levels.items():
        if name not in wanted:
            continue
        try:
            fn()
        except Exception as e:  # noqa: B902 (any failure is reported)
            level = name if name in report.levels else 'run'
            report.check(level, f'{name} level completed', False,
                         f'{type(e).__name__}: {e}'[:500])
            traceback.print_exc()
