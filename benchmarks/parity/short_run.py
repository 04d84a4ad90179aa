# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The ``run`` level: a short training run on both sides.

Ours is the mmengine Runner of the config (``tools/train.py`` builds the
same); the reference is its own training script's ``main_worker``. Both
start from the same weights, cluster the same real images twice, and train
a few iterations per epoch on the same batches: our sampler's order is
recorded and replayed to the reference (its sampler is the one object of
its training loop that the harness replaces, with the augmentations, which
are off on both sides). Compared: the labels of each clustering, the
memory each clustering builds, the loss of every iteration, the final
weights, the final mAP.
"""
import contextlib
import copy
import os.path as osp
import sys
import traceback
import types
from argparse import Namespace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmreid_usl.datasets.samplers import PseudoIdentitySampler
from mmreid_usl.evaluation.functional import evaluate_rank
from . import common
from .data import ReferenceDataset, make_subset
from .keymap import copy_weights, state_diff
from .report import tensor_diff
from .shims import load_module_from_file

#: The random transforms of the reference training pipelines, replaced by
#: the identity (our side trains with the test pipeline).
RANDOM_TRANSFORMS = ('RandomHorizontalFlip', 'Pad', 'RandomCrop',
                     'RandomErasing', 'RandomApply', 'GaussianBlur')


class _Identity:

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, img):
        return img


def transforms_without_augmentation(T: types.ModuleType) -> types.ModuleType:
    """A copy of the reference's transforms namespace whose random
    transforms are the identity."""
    ns = types.ModuleType(T.__name__ + '_no_aug')
    ns.__dict__.update({k: v for k, v in vars(T).items()
                        if not k.startswith('__')})
    for name in RANDOM_TRANSFORMS:
        setattr(ns, name, _Identity)
    return ns


def run_overrides(batch: int,
                  iters: int,
                  eps: float,
                  num_instances: int,
                  num_replicas: int = 4) -> Dict[str, object]:
    """Our config for the short run: the subset, the batch in BN groups of
    ``batch / num_replicas`` (the reference's emulated DataParallel), two
    epochs, no validation loop (evaluated by the harness at the end)."""
    return {
        'model.bn_group_size': batch // num_replicas,
        'train_dataloader.global_batch_size': batch,
        'train_dataloader.batch_size': batch,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.sampler.num_instances': num_instances,
        'train_dataloader.sampler.samples_per_epoch': iters * batch,
        'cluster_dataloader.num_workers': 0,
        'cluster_dataloader.batch_size': batch,
        'train_cfg.max_epochs': 2,
        'default_hooks.pseudo_label.labeler.clusterer.eps': eps,
        'default_hooks.logger.interval': 1,
    }


class Recorder:
    """What happens at each (re-)labelling and iteration of a run.

    ``memory`` holds what each labelling builds (a tensor, or a dict of
    them for memories of several parts); ``terms`` the loss terms of every
    iteration (name -> value), ``losses`` their sums.
    """

    def __init__(self) -> None:
        self.labels: List[np.ndarray] = []
        self.memory: List[Any] = []
        self.losses: List[float] = []
        self.terms: List[Dict[str, float]] = []
        self.batches: List[List[int]] = []


@contextlib.contextmanager
def record_ours(model_cls,
                recorder: Recorder,
                memory_attr: str = 'memory',
                memory_fn: Optional[Callable[[Any], Any]] = None):
    """Record labels, memory, losses and the sampler's order of our run.

    Args:
        model_cls (type): The algorithm class (its methods are wrapped).
        recorder (Recorder): Where to record.
        memory_attr (str): The model's memory with ``features``, recorded
            after each labelling.
        memory_fn (Callable, optional): ``model -> what to record`` after
            each labelling instead (e.g. ICE's centroids and camera
            proxies).
    """
    set_labels = model_cls.set_pseudo_labels
    loss = model_cls.loss
    sampler_iter = PseudoIdentitySampler.__iter__

    def set_pseudo_labels(self, result):
        set_labels(self, result)
        recorder.labels.append(result.labels.cpu().numpy().copy())
        if memory_fn is not None:
            recorder.memory.append(memory_fn(self))
        else:
            recorder.memory.append(
                getattr(self, memory_attr).features.detach().clone())

    def loss_fn(self, inputs, data_samples):
        out = loss(self, inputs, data_samples)
        recorder.terms.append({k: float(v) for k, v in out.items()})
        recorder.losses.append(float(sum(v for v in out.values())))
        return out

    def it(self):
        order = list(sampler_iter(self))
        recorder.batches.append(order)
        return iter(order)

    model_cls.set_pseudo_labels = set_pseudo_labels
    model_cls.loss = loss_fn
    PseudoIdentitySampler.__iter__ = it
    try:
        yield recorder
    finally:
        model_cls.set_pseudo_labels = set_labels
        model_cls.loss = loss
        PseudoIdentitySampler.__iter__ = sampler_iter


def train_ours(cfg, work_dir: str, init_ckpt: str,
               train_pipeline: Optional[list] = None,
               dtype: torch.dtype = torch.float32):
    """Train with our Runner (its model cast to ``dtype``); returns the
    trained model.

    Args:
        cfg (Config): The run's config.
        work_dir (str): The Runner's work dir.
        init_ckpt (str): Initial weights (``load_from``).
        train_pipeline (list, optional): The training pipeline without
            augmentation; None: the clustering (test) pipeline, one view.
        dtype (torch.dtype): float64 for the exactness check.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = init_ckpt
    cfg.train_dataloader.dataset.pipeline = copy.deepcopy(
        train_pipeline if train_pipeline is not None else
        cfg.cluster_dataloader.dataset.pipeline)
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    runner = RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
    if dtype == torch.float64:
        runner.model.to(dtype)
        runner.model.data_preprocessor = common.Float64Inputs(
            runner.model.data_preprocessor, cfg.model.data_preprocessor.mean,
            cfg.model.data_preprocessor.std)
    runner.train()
    return runner.model


def replay_sampler(recorder: Recorder, train_paths: List[str]):
    """A sampler class for the reference script that yields, epoch after
    epoch, the samples our sampler drew (mapped by file path to the
    positions of the reference's ``train_set``)."""
    state = {'epoch': 0}

    class ReplaySampler(torch.utils.data.Sampler):

        def __init__(self, data_source, num_instances=4):
            pos = {f: i for i, (f, _, _) in enumerate(data_source)}
            order = recorder.batches[state['epoch']]
            missing = [train_paths[i] for i in order
                       if train_paths[i] not in pos]
            if missing:
                raise RuntimeError(
                    f'clustering {state["epoch"] + 1} differs: {len(missing)} '
                    'samples of our batches are outliers of the reference\'s '
                    f'clustering (e.g. {missing[0]}); our order cannot be '
                    'replayed')
            self.order = [pos[train_paths[i]] for i in order]
            state['epoch'] += 1

        def __len__(self):
            return len(self.order)

        def __iter__(self):
            return iter(self.order)

    return ReplaySampler


def align_rows(ours_labels: np.ndarray, ref_labels: np.ndarray,
               ref_rows: torch.Tensor) -> torch.Tensor:
    """Reference memory rows in the order of our cluster ids (matched by
    their members)."""
    order = []
    for c in range(int(ours_labels.max()) + 1):
        members = ref_labels[ours_labels == c]
        vals, counts = np.unique(members, return_counts=True)
        order.append(int(vals[np.argmax(counts)]))
    return ref_rows[order]


def compare_run(report, ours_rec: Recorder, ref_rec: Recorder, ours_model,
                ref_model, key_map, ours_map: float, ref_map: float,
                tol: float, memory_name: str = 'cluster memory',
                weights_name: str = 'final weights and BN buffers') -> None:
    """The run-level entries (``weights_name``: the row of the encoder
    ``key_map`` maps)."""
    lv = 'run'
    for e, (a, b) in enumerate(zip(ours_rec.labels, ref_rec.labels)):
        report.compare_labels(lv, f'labels of clustering {e + 1}', a, b)
        if e < len(ours_rec.memory) and e < len(ref_rec.memory) and \
                ours_rec.memory[e] is not None:
            try:
                rows = align_rows(a, b, ref_rec.memory[e])
                report.compare(lv, f'{memory_name} built by clustering '
                               f'{e + 1}', ours_rec.memory[e], rows, tol)
            except (IndexError, ValueError) as err:
                report.record(lv, f'{memory_name} built by clustering '
                              f'{e + 1}', float('inf'), float('inf'), tol,
                              f'not comparable: {err}')
    if len(ours_rec.labels) != len(ref_rec.labels):
        report.check(lv, 'number of clusterings', False,
                     f'{len(ours_rec.labels)} vs {len(ref_rec.labels)}')
    report.compare(lv, f'loss of every iteration ({len(ref_rec.losses)})',
                   ours_rec.losses, ref_rec.losses, tol)
    diffs = state_diff(ours_model, ref_model, key_map)
    sd_r = ref_model.state_dict()
    worst_abs = max(float(v.abs().max()) for v in diffs.values())
    worst_rel = max(
        float(v.abs().max()) / (float(sd_r[key_map[k]].abs().max()) or 1.0)
        for k, v in diffs.items())
    report.record(lv, weights_name, worst_abs, worst_rel, tol,
                  'worst tensor; relative to its own max |ref|')
    report.compare(
        lv, 'final mAP (test subset)', ours_map, ref_map, max(tol, 1e-3),
        'our evaluate_rank ranks float32 distances, the reference float64 '
        'ones: near-tied gallery entries can swap (the metric itself is '
        'exact from the same distances, components level)')


def our_map(model, cfg, source: str = 'student',
            dtype: torch.dtype = torch.float32,
            features: Optional[dict] = None) -> float:
    """mAP (fraction) of a model on the test subset, its features extracted
    and its distances ranked in ``dtype``; ``features`` (a dict), when
    given, receives the test features by image path."""
    test = common.build_dataset(cfg, 'test_dataloader')
    feats = common.extract(model, test, source, dtype=dtype)
    if features is not None:
        features.update({
            test.get_data_info(i)['img_path']: feats[i]
            for i in range(len(test))
        })
    is_q = np.arange(len(test)) < test.num_query
    pids, cams = test.get_pids(), test.get_camids()
    res = evaluate_rank(feats[is_q], feats[~is_q], pids[is_q], pids[~is_q],
                        cams[is_q], cams[~is_q], dtype=dtype)
    return float(res['mAP'])


@contextlib.contextmanager
def numpy_checkpoint_globals():
    """The reference scripts store numpy scalars (``best_mAP``) in their
    checkpoints; ``torch.load`` keeps ``weights_only=True`` with these
    numpy types allow-listed."""
    import numpy.core.multiarray as ma
    allowed = [ma.scalar, np.dtype, type(np.dtype(np.float64))]
    with torch.serialization.safe_globals(allowed):
        yield


class _KeepOpen:
    """``sys.stdout`` for a reference script: the open-reid ``Logger``
    closes the stream it wraps when it is garbage-collected."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, msg: str) -> int:
        return self.stream.write(msg)

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def call_reference_main(main: Callable,
                        args,
                        dtype: torch.dtype = torch.float32
                        ) -> Optional[BaseException]:
    """Run a reference training entry point; returns its exception (after
    printing it) instead of raising, so that the harness can still compare
    what was recorded. With ``dtype=torch.float64`` the default dtype is
    float64 during the run, so the reference's ``ToTensor`` / ``Normalize``
    work in float64 like :class:`common.Float64Inputs` on our side."""
    stdout = sys.stdout
    sys.stdout = _KeepOpen(stdout)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with numpy_checkpoint_globals():
            main(args)
    except Exception as e:  # noqa: B902 (reported, not hidden)
        traceback.print_exc()
        return e
    finally:
        sys.stdout = stdout
        torch.set_default_dtype(default)
    return None


def record_reference_failure(
        report,
        error: BaseException,
        name: str = 'reference training script completed') -> None:
    """A reference entry point's exception as a failed check ``name`` of
    the run level (what was recorded until then is still compared)."""
    report.check('run', name, False,
                 f'{type(error).__name__}: {error}'[:300] +
                 ' (what was recorded until then is compared below)')


def run_reference_main(report, main: Callable, args,
                       dtype: torch.dtype = torch.float32
                       ) -> Optional[BaseException]:
    """:func:`call_reference_main`, its failure recorded as a failed check
    of the run level (what was recorded until then is still compared)."""
    error = call_reference_main(main, args, dtype)
    if error is not None:
        record_reference_failure(report, error)
    return error


def reference_loader_args(work: str,
                          batch: int,
                          k: int,
                          height: int = 256,
                          width: int = 128) -> dict:
    """The data-loading options of a reference training script: the subset
    in ``work``, batches of ``batch`` = P x ``k``, ``height`` x ``width``
    images, no worker process."""
    return dict(data_dir=work, batch_size=batch, workers=0, height=height,
                width=width, num_instances=k)


def run_subset(args, work: str) -> str:
    """The short run's own subset in ``work`` (``--run-images`` training,
    ``--run-test`` test images: float64 feature extraction runs at a few
    images per second on a CPU)."""
    subset = osp.join(work, 'subset_run')
    make_subset(args.data, subset, args.run_images, args.run_test)
    return subset


def momentum_run_overrides(args, batch: int, k: int,
                           num_replicas: int) -> Dict[str, object]:
    """:func:`run_overrides` of a method with a momentum encoder: its
    forwards in the BN groups of the student's, our Runner and sampler
    seeded by ``--seed``."""
    overrides = run_overrides(batch, args.run_iters, args.run_eps, k,
                              num_replicas)
    overrides.update({
        'model.momentum_bn_group_size': batch // num_replicas,
        'randomness.seed': args.seed,
        'train_dataloader.sampler.seed': args.seed,
    })
    return overrides


def save_initial(cfg, seed: int, path: str) -> torch.nn.Module:
    """Our seeded model of ``cfg``, its weights saved at ``path`` (the
    ``load_from`` of our run; the reference's networks get them copied
    in)."""
    init = common.build_model(cfg, seed)
    torch.save({'state_dict': init.state_dict()}, path)
    return init


#: Relative size of the perturbation of the initial weights that measures
#: a short run's rounding floor (``--run-floor``): a few float64 ulps.
FLOOR_PERTURBATION = 1e-15
#: With ``--run-floor``, a trained encoder's run rows pass within this
#: factor of the floor (a faithfulness difference shows 1e-4 and more).
FLOOR_FACTOR = 10


def perturbed_initial(init_ckpt: str, path: str,
                      rel: float = FLOOR_PERTURBATION,
                      seed: int = 1) -> str:
    """A float64 copy of the initial weights at ``init_ckpt`` with every
    parameter times ``1 + rel * e``, ``e ~ N(0, 1)`` (BN buffers unchanged),
    saved at ``path``.

    Training from it and from ``init_ckpt`` differs only by rounding-sized
    inputs: how far the two runs end apart is the run's rounding floor, the
    smallest difference a comparison of two implementations can expect
    (a chaotic trajectory, e.g. a re-clustering after Adam steps over small
    BN groups, amplifies float64 rounding many orders of magnitude).
    """
    ckpt = torch.load(init_ckpt, map_location='cpu', weights_only=True)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in ckpt['state_dict'].items():
        if value.is_floating_point():
            value = value.double()
            if 'running' not in key:
                value = value * (1 + rel * torch.randn(
                    value.shape, generator=gen, dtype=torch.float64))
        state[key] = value
    torch.save(dict(ckpt, state_dict=state), path)
    return path


def rounding_floor(before: Dict[str, torch.Tensor],
                   ours: Dict[str, torch.Tensor],
                   floor: Dict[str, torch.Tensor],
                   key_map: Dict[str, str]) -> Dict[str, float]:
    """How far our run from :func:`perturbed_initial` ends from our run:
    ``updates`` = the relative L2 difference of the parameter updates (as
    :func:`common.update_diff`), ``bn_stats`` = the largest relative
    difference of the BN running statistics (as ``ParityReport.compare``),
    over the tensors of ``key_map`` (our names)."""
    same = {k: k for k in key_map}
    params = {k: k for k in same if 'running' not in k and
              'num_batches' not in k}
    buffers = [k for k in same if 'running' in k]
    stats = tensor_diff(
        torch.cat([floor[k].double().flatten() for k in buffers]),
        torch.cat([ours[k].double().flatten() for k in buffers])) \
        if buffers else dict(max_rel=0.0)
    return dict(updates=common.update_diff(before, floor, ours,
                                           params)['rel_l2'],
                bn_stats=float(stats['max_rel']))


#: The shim of a reference's model factory that gives its networks our
#: initial weights.
OUR_WEIGHTS = 'model factory: our initial weights copied in after creation'


def patch_reference_run(
        rt,
        script,
        subset: str,
        on_create: Callable[[torch.nn.Module], None],
        why: str = OUR_WEIGHTS) -> Tuple[ReferenceDataset, List[str]]:
    """The inputs of a reference training script: its model factory
    (``script.models.create``; every network it creates is passed to
    ``on_create``, which gives it our initial weights), its dataset
    factory (``get_data`` -> the subset as open-reid style lists) and its
    Jaccard distance (faiss on the CPU:
    :func:`common.patch_jaccard_faiss_cpu`).

    Returns:
        tuple: ``(data, train_paths)``: the reference's dataset of the
        subset and the paths of its training images, in its order.
    """
    data = ReferenceDataset(subset)
    create = script.models.create

    def create_with_our_weights(name, *a, **kw):
        net = create(name, *a, **kw)
        on_create(net)
        return net

    rt.patch(script.models, 'create', create_with_our_weights, why)
    rt.patch(script, 'get_data', lambda name, data_dir: data,
             'dataset factory -> the CUHK03 subset (open-reid style lists)')
    common.patch_jaccard_faiss_cpu(rt, script)
    return data, [f for f, _, _ in data.train]


def recording_classes(script, rec: Recorder,
                      maps: List[float]) -> Tuple[type, type]:
    """Subclasses of the script's ``DBSCAN`` and ``Evaluator`` that record
    (nothing changed) the labels of every clustering (``rec.labels``) and
    the mAP of every evaluation (``maps``).

    Returns:
        tuple: ``(RecordingDBSCAN, RecordingEvaluator)``.
    """

    class RecordingDBSCAN(script.DBSCAN):

        def fit_predict(self, X, y=None, sample_weight=None):
            labels = super().fit_predict(X)
            rec.labels.append(np.asarray(labels).copy())
            return labels

    class RecordingEvaluator(script.Evaluator):

        def evaluate(self, *a, **kw):
            out = super().evaluate(*a, **kw)
            maps.append(float(out[1] if isinstance(out, tuple) else out))
            return out

    return RecordingDBSCAN, RecordingEvaluator


def short_run_cluster_contrast(args, report, rt, key_map, subset, work,
                               switch_values: Callable, config: str,
                               script) -> None:
    """Cluster Contrast: ours (Runner) vs ``main_worker`` of the official
    training script."""
    batch, k = args.run_batch, 4
    # the run's own (smaller) subset: float64 feature extraction runs at a
    # few images per second on a CPU
    subset = osp.join(work, 'subset_run')
    make_subset(args.data, subset, args.run_images, args.run_test)
    cfg = common.load_config(
        config,
        switch_values(run_overrides(batch, args.run_iters, args.run_eps, k)),
        subset, args.run_scale)
    init = common.build_model(cfg, args.seed)
    init_ckpt = osp.join(work, 'init.pth')
    torch.save({'state_dict': init.state_dict()}, init_ckpt)
    wide = args.run_precision == 'fp64'
    dtype = torch.float64 if wide else torch.float32
    # -- ours
    model_cls = type(init)
    with record_ours(model_cls, Recorder()) as ours_rec:
        ours = train_ours(cfg, osp.join(work, 'ours_run'), init_ckpt,
                          dtype=dtype)
    ours_map = our_map(ours, cfg)
    # -- reference
    ref_rec = Recorder()
    data = ReferenceDataset(subset)
    train_paths = [f for f, _, _ in data.train]
    created = {}
    models_mod = script.models
    create = models_mod.create

    def create_with_our_weights(name, *a, **kw):
        net = create(name, *a, **kw)
        copy_weights(init, net, key_map)
        created['model'] = net
        return net

    cm_cls = script.ClusterMemory

    class RecordingMemory(cm_cls):

        def forward(self, inputs, targets):
            if not getattr(self, '_seen', False):
                ref_rec.memory.append(self.features.detach().clone())
                self._seen = True
            loss = super().forward(inputs, targets)
            ref_rec.losses.append(float(loss))
            return loss

    class RecordingDBSCAN(script.DBSCAN):

        def fit_predict(self, X, y=None, sample_weight=None):
            labels = super().fit_predict(X)
            ref_rec.labels.append(np.asarray(labels).copy())
            return labels

    maps = []
    evaluator = script.Evaluator

    class RecordingEvaluator(evaluator):

        def evaluate(self, *a, **kw):
            out = super().evaluate(*a, **kw)
            maps.append(float(out[1] if isinstance(out, tuple) else out))
            return out

    rt.patch(models_mod, 'create', create_with_our_weights,
             'model factory: our initial weights copied in after creation')
    rt.patch(script, 'get_data', lambda name, data_dir: data,
             'dataset factory -> the CUHK03 subset (open-reid style lists)')
    common.patch_jaccard_faiss_cpu(rt, script)
    if wide:
        rt.cuda_shims(torch.float64)
    rt.patch(script, 'RandomMultipleGallerySampler',
             replay_sampler(ours_rec, train_paths),
             'training sampler -> replay of our sampler\'s order')
    rt.patch(script, 'T', transforms_without_augmentation(script.T),
             'random training transforms -> identity (off on both sides)')
    for name, cls in (('ClusterMemory', RecordingMemory),
                      ('DBSCAN', RecordingDBSCAN),
                      ('Evaluator', RecordingEvaluator)):
        rt.patch(script, name, cls,
                 'recording subclasses of ClusterMemory / DBSCAN / Evaluator '
                 '(values read, nothing changed)')
    ref_args = Namespace(
        dataset='subset',
        **reference_loader_args(work, batch, k,
                                *common.scaled_size((256, 128),
                                                    args.run_scale)),
        eps=args.run_eps,
        eps_gap=0.02,
        k1=30,
        k2=6,
        arch='resnet50',
        features=0,
        dropout=0,
        momentum=0.1,
        lr=0.00035,
        weight_decay=5e-4,
        epochs=2,
        iters=args.run_iters,
        step_size=20,
        seed=args.seed,
        print_freq=10**6,
        eval_step=10**6,
        temp=0.05,
        logs_dir=osp.join(work, 'ref_run'),
        pooling_type='gem',
        use_hard=False,
        no_cam=False)
    run_reference_main(report, script.main_worker, ref_args, dtype)
    ref_model = created['model']
    compare_run(report, ours_rec, ref_rec, ours, ref_model, key_map,
                ours_map, maps[0] if maps else float('nan'),
                common.STEP_TOLS['fp64'][1] if wide else args.step_tol)
    report.notes.append(
        f'short run in {args.run_precision}: {len(train_paths)} images, '
        '2 clusterings, '
        f'{args.run_iters} iterations of {batch} (P x K = {batch // k} x '
        f'{k}) per epoch, augmentations off, eps {args.run_eps}, '
        f'{run_size_note(args)}')


def short_run_theory(args, report, rt, cfg, key_map, work, tgt, src,
                     ref_model_fn: Callable, floor_div_int: type,
                     k: int) -> None:
    """Theory: ours (Runner, ``theory-sgd`` config) vs ``main`` of the
    official ``selftraining.py``: the direct transfer, two clusterings with
    the source bank, one epoch (#clusters x K samples) after each, the final
    evaluation."""
    from mmreid_usl.clustering import RhoDBSCANClusterer
    batch = args.run_batch
    wide = args.run_precision == 'fp64'
    dtype = torch.float64 if wide else torch.float32
    tgt_run = osp.join(work, 'subset_run')
    src_run = osp.join(work, 'subset_run_source')
    make_subset(args.data, tgt_run, args.run_images, args.run_test)
    make_subset(args.data, src_run, args.run_images, 0, cameras=(3, 4))
    overrides = {
        'train_dataloader.batch_size': batch,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_dataloader.sampler.num_instances': k,
        'cluster_dataloader.num_workers': 0,
        'cluster_dataloader.batch_size': batch,
        'default_hooks.pseudo_label.interval': 1,
        'default_hooks.pseudo_label.reference_dataloader.num_workers': 0,
        'default_hooks.pseudo_label.labeler.clusterer.rho': args.rho,
        'default_hooks.logger.interval': 1,
        'train_cfg.max_epochs': 2,
        'custom_hooks': [],
    }
    cfg = common.load_config(CONFIG_THEORY, overrides, tgt_run,
                             args.run_scale)
    ref_loader = cfg.default_hooks.pseudo_label.reference_dataloader
    ref_loader.dataset = dict(
        type='ReIDFolderDataset',
        data_root=src_run,
        split='train',
        pipeline=ref_loader.dataset.pipeline)
    init = common.build_model(cfg, args.seed)
    # the stage-1 checkpoint both sides start from, in each one's layout
    init_ckpt = osp.join(work, 'init.pth')
    torch.save({'state_dict': init.state_dict()}, init_ckpt)
    ref_init = osp.join(work, 'init_theory.pth')
    sd = init.state_dict()
    torch.save({'state_dict': {t: sd[o] for o, t in key_map.items()}},
               ref_init)
    eps_o: List[float] = []
    call = RhoDBSCANClusterer.__call__

    def recording_call(self, *a, **kw):
        out = call(self, *a, **kw)
        eps_o.append(float(self.eps))
        return out

    RhoDBSCANClusterer.__call__ = recording_call
    try:
        with record_ours(type(init), Recorder(),
                         memory_fn=lambda m: None) as ours_rec:
            ours_direct = _raw_map(init, cfg)
            ours = train_ours(cfg, osp.join(work, 'ours_run'), init_ckpt,
                              dtype=dtype)
    finally:
        RhoDBSCANClusterer.__call__ = call
    ours_final = _raw_map(ours, cfg)
    # -- the reference
    script = load_module_from_file(
        'theory_selftraining', osp.join(rt.path, 'selftraining.py'))
    ref_rec = Recorder()
    tgt_data, src_data = ReferenceDataset(tgt_run), ReferenceDataset(src_run)
    # the attributes Theory's scripts read (trainval = train: no val split)
    for data in (tgt_data, src_data):
        data.trainval = data.train
        data.num_train_ids = data.num_trainval_ids = data.num_train_pids
    created = {}
    create = script.models.create

    def create_model(name, *a, **kw):
        net = create(name, *a, **kw)
        created['model'] = net
        return net

    triplet = script.TripletLoss

    class Triplet(triplet):

        def __init__(self, margin=0, num_instances=0, use_semi=True):
            super().__init__(margin, floor_div_int(num_instances), use_semi)

    eps_r: List[float] = []

    class RecordingDBSCAN(script.DBSCAN):

        def fit_predict(self, X, y=None, sample_weight=None):
            labels = super().fit_predict(X)
            eps_r.append(float(self.eps))
            ref_rec.labels.append(np.asarray(labels).copy())
            return labels

    maps: List[float] = []
    evaluator = script.Evaluator

    class RecordingEvaluator(evaluator):

        def evaluate(self, *a, **kw):
            score = super().evaluate(*a, **kw)
            maps.append(float(score.map))
            return score

    forward = script.Trainer._forward

    def recording_forward(self, inputs_, targets, epoch):
        loss, prec = forward(self, inputs_, targets, epoch)
        ref_rec.losses.append(float(loss.detach()))
        return loss, prec

    train_paths = [f for f, _, _ in tgt_data.train]
    rt.patch(script.datasets, 'create',
             lambda name, root, **kw: src_data if name == 'dukemtmc' else
             tgt_data, 'dataset factory -> the CUHK03 subsets (source: '
             'camera pair 2, target: pair 1) as open-reid style lists')
    rt.patch(script.models, 'create', create_model,
             'model factory recorded; our initial weights given as the '
             'stage-1 checkpoint (--resume) in its key layout')
    rt.patch(script, 'TripletLoss', Triplet,
             '`TripletLoss(num_instances=K)`: K as an int whose `n / K` is '
             '`n // K` (Python 2 division in its loop bounds)')
    rt.patch(script, 'RandomIdentitySampler',
             replay_sampler(ours_rec, train_paths),
             'training sampler -> replay of our sampler\'s order')
    rt.patch(script, 'T', transforms_without_augmentation(script.T),
             'random training transforms -> identity (off on both sides)')
    for module, name, value in ((script, 'DBSCAN', RecordingDBSCAN),
                                (script, 'Evaluator', RecordingEvaluator),
                                (script.Trainer, '_forward',
                                 recording_forward)):
        rt.patch(module, name, value,
                 'recording subclasses of DBSCAN / Evaluator / Trainer '
                 '(values read, nothing changed)')
    if wide:
        rt.cuda_shims(torch.float64)
    height, width = common.scaled_size((256, 128), args.run_scale)
    ref_args = Namespace(
        src_dataset='dukemtmc', tgt_dataset='market1501', batch_size=batch,
        workers=0, split=0, height=height, width=width,
        combine_trainval=False,
        num_instances=k, arch='resnet50', margin=0.5, lambda_value=0.1,
        rho=args.rho, lr=6e-5, resume=ref_init, evaluate=0, seed=args.seed,
        print_freq=10**6, iteration=2, epochs=1, dist_metric='euclidean',
        data_dir=work)
    run_reference_main(report, script.main, ref_args, dtype)
    tol = common.STEP_TOLS['fp64'][1] if wide else args.step_tol
    lv = 'run'
    report.compare(lv, 'direct transfer mAP (raw pool5)', ours_direct,
                   maps[0] if maps else float('nan'), max(tol, 1e-6),
                   'our ranking runs on float32 distances')
    report.compare(lv, f'eps from rho = {args.rho:g} (first clustering)',
                   eps_o[:1], eps_r[:1], 1e-12)
    compare_run(report, ours_rec, ref_rec, ours, created['model'], key_map,
                ours_final, maps[-1] if len(maps) > 1 else float('nan'),
                tol)
    report.notes.append(
        f'short run in {args.run_precision}: {len(train_paths)} target and '
        f'{len(src_data.train)} source images, 2 clusterings (rho '
        f'{args.rho:g}), one epoch (#clusters x {k}) of batches of {batch} '
        f'after each, augmentations off, {run_size_note(args)}')


def run_size_note(args, size: Tuple[int, int] = (256, 128)) -> str:
    """The short run's image size for the report's notes."""
    h, w = common.scaled_size(size, args.run_scale)
    return f'images {h}x{w} (--run-scale {args.run_scale:g})'


CONFIG_THEORY = 'configs/gds/theory-sgd_r50_duke2market.py'


@torch.no_grad()
def _raw_map(model, cfg) -> float:
    """mAP (fraction) on the test subset with raw pool5 and the squared
    Euclidean distance (Theory's evaluation, ``test_cfg.normalize=False``)."""
    test = common.build_dataset(cfg, 'test_dataloader')
    was = model.training
    model.eval()
    feats = []
    for s in range(0, len(test), 64):
        x = common.our_inputs(model, test, range(s, min(s + 64, len(test))))
        feats.append(model.extract_feat(x).double())
    model.train(was)
    feats = torch.cat(feats)
    is_q = np.arange(len(test)) < test.num_query
    pids, cams = test.get_pids(), test.get_camids()
    return float(
        evaluate_rank(feats[is_q], feats[~is_q], pids[is_q], pids[~is_q],
                      cams[is_q], cams[~is_q])['mAP'])
