# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Our side of a parity run: the model of a named config with switches, its
data on the subset, its features and training steps, and the helpers both
sides share (seeding, fixed batch orders, timing)."""
import copy
import os.path as osp
import random
import tempfile
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

from mmreid_usl.registry import DATASETS, MODELS
from mmreid_usl.utils import register_all_modules
from .data import ReferenceDataset, make_subset
from .keymap import check_key_map, copy_weights, sub_state_dict

register_all_modules(init_default_scope=True)
# the harness prints its own tables; mmengine's INFO lines (weight
# initialisation of every tensor, ...) would bury them
MMLogger.get_instance('parity', log_level='WARNING')


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_config(config: str,
                switches: Dict[str, object],
                data_root: Optional[str] = None,
                image_scale: float = 1.0) -> Config:
    """The config with the parity switches merged (``--cfg-options``
    style keys), ImageNet loading off (the weights are copied to both
    sides), every dataset pointed at the subset folder and, with
    ``image_scale`` != 1, every pipeline's resize and crop sizes scaled by
    it (the short run's ``--run-scale``)."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(switches))
    cfg.model.encoder.backbone.init_cfg = None
    if image_scale != 1:
        _scale_image_sizes(cfg._cfg_dict, image_scale)
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


def with_image_scale(cfg: Config, scale: float) -> Config:
    """A copy of ``cfg`` whose pipelines' resize and crop sizes are
    scaled by ``scale`` (the steps level's ``--step-scale``)."""
    cfg = copy.deepcopy(cfg)
    if scale != 1:
        _scale_image_sizes(cfg._cfg_dict, scale)
    return cfg


def scaled_size(size: Sequence[int], scale: float) -> Tuple[int, ...]:
    """``size`` (pixels) times ``scale``, rounded."""
    return tuple(int(round(v * scale)) for v in size)


def _scale_image_sizes(node, scale: float) -> None:
    """Scale, in place, the ``scale`` of every ``Resize`` and the
    ``crop_size`` of every crop in the (nested) config ``node``."""
    if isinstance(node, dict):
        if node.get('type') == 'Resize' and 'scale' in node:
            node['scale'] = scaled_size(node['scale'], scale)
        if 'crop_size' in node:
            node['crop_size'] = scaled_size(node['crop_size'], scale)
        for value in node.values():
            _scale_image_sizes(value, scale)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _scale_image_sizes(value, scale)


def build_model(cfg: Config, seed: int = 0) -> torch.nn.Module:
    """Our model of ``cfg`` with seeded random weights."""
    seed_all(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def prepare_run(args, report, config: str, switches: Dict[str, object],
                prefix: str) -> Tuple[str, str, Config, torch.nn.Module]:
    """The work dir of a parity run (``--work-dir``, or a new temporary
    folder named ``prefix...``), the subset in it (``--num-train`` /
    ``--num-test`` images, recorded in the report's meta with the config)
    and our seeded model of ``config`` with ``switches`` on the subset.

    Returns:
        tuple: ``(work, subset, cfg, model)``.
    """
    work = args.work_dir or tempfile.mkdtemp(prefix=prefix)
    subset = osp.join(work, 'subset')
    sizes = make_subset(args.data, subset, args.num_train, args.num_test)
    report.meta.update(config=config, subset=sizes)
    cfg = load_config(config, switches, subset)
    return work, subset, cfg, build_model(cfg, args.seed)


def check_encoder_key_maps(report, ours: torch.nn.Module,
                           refs: Dict[str, Tuple[torch.nn.Module, str]],
                           maps: Dict[str, Dict[str, str]],
                           prefix: Dict[str, str]) -> None:
    """One components entry per encoder: its key map is a bijection between
    our tensors (under ``prefix[name]``) and the reference network's.

    Args:
        refs (dict): Our encoder name -> ``(reference network, its name in
            the reference)``, e.g. ``{'momentum': (ref_m, 'model_ema')}``.
        maps (dict): Our encoder name -> its key map.
        prefix (dict): Our encoder name -> its state-dict prefix.
    """
    for name, (ref, ref_name) in refs.items():
        problems = check_key_map(
            sub_state_dict(ours, prefix[name]), ref.state_dict(), maps[name])
        report.check(
            'components', f'weights: key map is a bijection ({name} -> '
            f'{ref_name})', not problems, f'{len(maps[name])} tensors'
            if not problems else '; '.join(problems))


def reset_weights(ours: torch.nn.Module, initial: Dict[str, torch.Tensor],
                  refs: Dict[str, torch.nn.Module],
                  maps: Dict[str, Dict[str, str]],
                  prefix: Dict[str, str]) -> None:
    """Back to the initial weights on both sides: ``initial`` loaded into
    ours, then each of our encoders copied into the reference network that
    carries it (``refs``: our encoder name -> that network)."""
    ours.load_state_dict(initial)
    for name, ref in refs.items():
        copy_weights(ours, ref, maps[name], prefix[name])


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


def compare_input_tensors(report, ours, cfg: Config, subset: str, n: int,
                          ref_inputs: Callable, name: str,
                          note: str) -> Tuple[object, torch.Tensor]:
    """The first ``n`` images of the subset through our test pipeline and
    data preprocessor against the reference's test pipeline
    (``ref_inputs(ReferenceDataset, indices)``), one components entry.

    Returns:
        tuple: ``(train_set, x)``: our clustering set and the reference's
        tensors (the batch the components level feeds both sides).
    """
    ref_data = ReferenceDataset(subset)
    train_set = build_dataset(cfg, 'cluster_dataloader')
    idx = list(range(n))
    x = ref_inputs(ref_data, idx)
    report.compare('components', name, our_inputs(ours, train_set, idx), x,
                   1e-5, note)
    return train_set, x


@torch.no_grad()
def compare_eval_outputs(report, ours, ref_s: torch.nn.Module,
                         ref_m: torch.nn.Module, x: torch.Tensor,
                         pooling: str) -> torch.Tensor:
    """Eval mode on both sides (the reference networks L2-normalise their
    eval output): the student's pooled feature (``pooling``: its name in
    the row) and the normalised outputs of our student and momentum
    encoders against ``ref_s`` and ``ref_m``.

    Returns:
        torch.Tensor: Our normalised momentum output.
    """
    lv = 'components'
    ours.eval()
    ref_s.eval()
    ref_m.eval()
    pooled = ours.encoder.pooling(ours.encoder.backbone(x))
    pooled = pooled[-1] if isinstance(pooled, (tuple, list)) else pooled
    report.compare(lv, f'pooled feature (eval, {pooling})', pooled.flatten(1),
                   ref_s.gap(ref_s.base(x)).flatten(1), 1e-5)
    report.compare(lv, 'student output (eval, BNNeck, L2-normalised)',
                   F.normalize(ours.extract_feat(x), dim=1), ref_s(x), 1e-5)
    keys = F.normalize(ours.extract_feat(x, 'momentum'), dim=1)
    report.compare(lv, 'momentum output (eval, L2-normalised)', keys,
                   ref_m(x), 1e-5)
    return keys


def compare_ema_step(report, ours, ref_s: torch.nn.Module,
                     ref_m: torch.nn.Module, maps: Dict[str, Dict[str, str]],
                     prefix: Dict[str, str], seed: int,
                     ref_step: Callable[[], None], params_note: str,
                     buffers_note: str = '') -> None:
    """One EMA step from a student that differs from the momentum encoder
    (``N(0, 1)`` noise from a generator seeded ``seed`` added to our
    student, which is then copied into ``ref_s``): our ``momentum_update``
    against ``ref_step()`` (the reference's update of ``ref_m`` from
    ``ref_s``). Compared: every momentum parameter, its change, and the BN
    buffers, which neither side averages.

    Args:
        params_note (str): The reference's side in the note of the
            parameters' entry (its alpha, which parameters there are).
        buffers_note (str): Appended to the note of the buffers' entry.
    """
    lv = 'components'
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ours.encoder.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    copy_weights(ours, ref_s, maps['student'], prefix['student'])
    before = copy.deepcopy(ours.state_dict())
    ours.momentum_update()
    ref_step()
    mom = maps['momentum']
    params = [k for k in mom if 'running' not in k and 'num_batches' not in k]
    sd_o, sd_r = ours.state_dict(), ref_m.state_dict()
    report.compare(
        lv, 'EMA step: momentum parameters',
        torch.cat([sd_o[k].double().flatten() for k in params]),
        torch.cat([sd_r[mom[k]].double().flatten() for k in params]), 1e-5,
        'student = momentum + N(0, 1) noise; ours momentum=0.001 '
        '(mmengine convention), reference ' + params_note)
    report.compare(
        lv, 'EMA step: change of the momentum parameters',
        torch.cat([(sd_o[k].double() - before[k].double()).flatten()
                   for k in params]),
        torch.cat([(sd_r[mom[k]].double() - before[k].double()).flatten()
                   for k in params]), 1e-4,
        'theta_m(after) - theta_m(before); float32 rounding of the two '
        'formulas (lerp_ vs mul_ + add_)')
    buffers = [k for k in mom if k not in params]
    same_o = all(torch.equal(sd_o[k], before[k]) for k in buffers)
    same_r = all(torch.equal(sd_r[mom[k]], before[k]) for k in buffers)
    report.check(
        lv, 'EMA step leaves the momentum BN buffers unchanged',
        same_o and same_r,
        f'ours {same_o}, reference {same_r}: only parameters are averaged '
        "(momentum_buffer_mode='own')" + buffers_note)


@torch.no_grad()
def extract(model, dataset, source: str = 'student',
            batch_size: int = 64,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """L2-normalised eval features of every image, in dataset order, as
    ``dtype`` (a float64 model's features stay float64 with
    ``torch.float64``)."""
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        x = our_inputs(model, dataset, idx)
        out.append(F.normalize(model.extract_feat(x, source).to(dtype),
                               dim=1))
    model.train(was)
    return torch.cat(out)


class SubsetFeatures:
    """:func:`extract` of the clustering set of ``cfg`` by our seeded,
    untrained model of it, computed on first use: the components level's
    clustering and the steps level's labels start from the same features,
    extracted once."""

    def __init__(self, cfg: Config, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self._feats: Optional[torch.Tensor] = None

    def __call__(self) -> torch.Tensor:
        if self._feats is None:
            model = build_model(self.cfg, self.seed)
            self._feats = extract(
                model, build_dataset(self.cfg, 'cluster_dataloader'))
        return self._feats


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


def to_precision(dtype: torch.dtype, ours: torch.nn.Module,
                 *refs: torch.nn.Module) -> None:
    """Both sides in ``dtype`` (after the weights were copied), our inputs
    cast by the data preprocessor (:class:`CastInputs`)."""
    ours.to(dtype)
    for ref in refs:
        ref.to(dtype)
    ours.data_preprocessor = CastInputs(ours.data_preprocessor, dtype)


def our_train_steps(cfg: Config,
                    ours: torch.nn.Module,
                    dataset,
                    batches: Sequence[Sequence[int]],
                    after_step: Optional[Callable[[dict], None]] = None):
    """Our side of the steps level: the Runner's ``train_step`` with the
    config's optimiser wrapper on every batch, each followed by
    ``after_step(log)`` when given (e.g. the EMA update of a hook).

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
        if after_step is not None:
            after_step(log)
    return optim, norms, grads, losses


def reference_adam(dp: torch.nn.Module, net: torch.nn.Module,
                   lr: float = 3.5e-4, weight_decay: float = 5e-4):
    """The reference scripts' Adam (one parameter group per trainable
    tensor of ``dp``, the DataParallel wrapper of ``net``), recording the
    gradient norm before every step and the gradients of the first one (by
    ``net``'s parameter names).

    Returns:
        tuple: ``(optimizer, norms, first_grads)``.
    """
    groups = [{'params': [v]} for _, v in dp.named_parameters()
              if v.requires_grad]
    optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    norms: List[float] = []
    grads: Dict[str, torch.Tensor] = {}
    record_grads(optimizer, dict(net.named_parameters()), norms, grads)
    return optimizer, norms, grads


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
    compare_updates(
        report, lv, f'parameter updates after {n} steps', before, sd_o, sd_r,
        key_map, tol_n,
        suffix=f' (lr {lr:g}), largest coordinate difference = max_abs')
    compare_buffers(report, lv, f'BN running statistics after {n} steps',
                    sd_o, sd_r, key_map, tol_n)


def compare_updates(report,
                    level: str,
                    name: str,
                    before: Dict[str, torch.Tensor],
                    sd_o: Dict[str, torch.Tensor],
                    sd_r: Dict[str, torch.Tensor],
                    key_map: Dict[str, str],
                    tol: float,
                    what: str = '',
                    suffix: str = '') -> None:
    """One entry: how far our parameter updates from ``before`` (our names)
    are from the reference's (:func:`update_diff` over the mapped
    parameters, the BN buffers left out). The note defines ``max_rel``
    (``what`` after the definition, e.g. what Δ is) and names the largest
    reference update (``suffix`` after it)."""
    params = {k: t for k, t in key_map.items()
              if 'running' not in k and 'num_batches' not in k}
    upd = update_diff(before, sd_o, sd_r, params)
    report.record(
        level, name, upd['max_abs'], upd['rel_l2'], tol,
        f'max_rel = ||Δours - Δref||₂ / ||Δref||₂{what}; largest update '
        f"{upd['max_update']:.3g}{suffix}")


def compare_buffers(report,
                    level: str,
                    name: str,
                    sd_o: Dict[str, torch.Tensor],
                    sd_r: Dict[str, torch.Tensor],
                    key_map: Dict[str, str],
                    tol: float,
                    note: str = '') -> None:
    """One entry: every BN running statistic (``running_mean`` /
    ``running_var``) of the mapped tensors, ours against the reference's."""
    buffers = [k for k in key_map if 'running' in k]
    report.compare(
        level, name, torch.cat([sd_o[k].double().flatten() for k in buffers]),
        torch.cat([sd_r[key_map[k]].double().flatten() for k in buffers]), tol,
        note)


def time_train_step(cfg: Config,
                    ours: torch.nn.Module,
                    data: dict,
                    iters: int,
                    after_step: Optional[Callable[[], None]] = None) -> float:
    """Median seconds of our ``train_step`` on ``data`` with the config's
    optimiser wrapper, each followed by ``after_step()`` when given (e.g.
    the EMA update of a hook), over ``iters`` steps after one warm-up."""
    optim = build_optimizer(cfg, ours)
    ours.train()

    def step() -> None:
        ours.train_step(data, optim)
        if after_step is not None:
            after_step()

    return time_per_iter(step, iters, warmup=1)


def timing_rows(report, setting: str, t_ours: float, t_ref: float) -> None:
    """The timing table: seconds per iteration of both sides in
    ``setting``, and their ratio."""
    for side, seconds in (('ours', t_ours), ('reference', t_ref)):
        report.timing[side] = dict(s_per_iter=seconds, setting=setting)
    report.timing['ours / reference'] = dict(s_per_iter=t_ours / t_ref,
                                             setting='ratio')


def run_scoped_levels(report, args, rt, levels: Dict[str, tuple]) -> None:
    """:func:`run_levels` of ``--levels``, each level ``name -> (fn,
    *fn_args)`` run as ``fn(*fn_args)`` with the patches it makes to the
    reference undone at its end (``rt.scoped()``); then the shims applied
    go to the report."""

    def scoped(fn: Callable, *fn_args) -> None:
        with rt.scoped():
            fn(*fn_args)

    run_levels(report, args.levels, {
        name: (lambda call=call: scoped(*call))
        for name, call in levels.items()
    })
    report.shims.extend(s for s in rt.applied if s not in report.shims)


def run_levels(report, wanted: Sequence[str],
               levels: Dict[str, Callable[[], None]]) -> None:
    """Run the wanted levels in order; a level that raises is recorded as
    a failed entry naming the error, and the next level still runs."""
    for name, fn in levels.items():
        if name not in wanted:
            continue
        start = time.perf_counter()
        try:
            fn()
        except Exception as e:  # noqa: B902 (any failure is reported)
            level = name if name in report.levels else 'run'
            report.check(level, f'{name} level completed', False,
                         f'{type(e).__name__}: {e}'[:500])
            traceback.print_exc()
        report.meta.setdefault('level_s', {})[name] = round(
            time.perf_counter() - start, 1)
