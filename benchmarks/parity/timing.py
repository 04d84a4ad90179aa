# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The ``timing`` level: seconds per training iteration, ours vs the
reference, on the same device with the same batch of random 256x128 images
and random weights (no data loading on either side: the batch is made once
and fed again and again)."""
from typing import Callable

import torch
import torch.nn.functional as F

from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from . import common
from .shims import CPUDataParallel


def random_batch(batch: int, num_instances: int, seed: int = 0,
                 views: int = 1, camids=(0, 1)):
    """A P x K batch of random uint8 images as our collate gives it, and
    the same images normalised as the reference's transforms give them.

    Returns:
        tuple: ``(data, ref_views, labels, cams)``: ``data`` for
        ``model.train_step``, ``ref_views`` a list of ``(B, 3, 256, 128)``
        float tensors (one per view), labels and cameras ``(B,)``.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) // num_instances
    cams = torch.tensor([camids[i % len(camids)] for i in range(batch)])
    imgs = [
        torch.randint(0, 256, (batch, 3, 256, 128), generator=g,
                      dtype=torch.uint8) for _ in range(views)
    ]
    samples = []
    for i in range(batch):
        s = ReIDDataSample()
        s.set_metainfo(dict(sample_idx=i, camid=int(cams[i])))
        samples.append(s)
    # as default_collate gives them: one (B, 3, H, W) uint8 tensor, or a
    # list of V of them (MultiView); the data preprocessor stacks the views
    inputs = imgs[0] if views == 1 else list(imgs)
    # BGR (our loaders) -> the reference's RGB in [0, 1], ImageNet stats
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref_views = [((v.flip(1).float() / 255) - mean) / std for v in imgs]
    data = dict(inputs=inputs, data_samples=samples)
    return data, ref_views, labels, cams


def labelled(model, batch: int, labels: torch.Tensor, cams: torch.Tensor,
             seed: int = 0) -> None:
    """Give ``model`` the labels of the batch (memories from random
    features)."""
    g = torch.Generator().manual_seed(seed)
    banks = {
        s: F.normalize(torch.randn(batch, model.encoder.feat_dim,
                                   generator=g), dim=1)
        for s in model.encoder_names
    }
    result = PseudoLabelResult.from_labels(
        labels.numpy(), banks, cluster_encoder=model.cluster_encoder,
        camids=cams)
    model.set_pseudo_labels(result)


def median_step_time(step: Callable[[], None], iters: int) -> float:
    """Median seconds of ``step`` after one warm-up call."""
    return common.time_per_iter(step, iters, warmup=1)


def time_cluster_contrast(args, report, rt, key_map, config: str,
                          switch_values: Callable,
                          ref_model_fn: Callable) -> None:
    """Cluster Contrast: our ``train_step`` vs the official trainer's
    iteration (forward, ClusterNCE, backward + memory update, Adam)."""
    batch = args.timing_batch or 64
    per_gpu = min(batch, 64)  # official: 4 GPUs x 64
    cfg = common.load_config(
        config, switch_values({'model.bn_group_size': per_gpu}))
    ours = common.build_model(cfg, args.seed)
    data, ref_views, labels, cams = random_batch(batch, 16, args.seed)
    labelled(ours, batch, labels, cams)
    optim = common.build_optimizer(cfg, ours)
    ours.train()
    t_ours = median_step_time(lambda: ours.train_step(data, optim),
                              args.timing_iters)
    cm = rt.import_module('clustercontrast.models.cm')
    trainers = rt.import_module('clustercontrast.trainers')
    ref = ref_model_fn(rt.import_module('clustercontrast.models'), ours,
                       key_map)
    ref_dp = CPUDataParallel(ref, max(1, batch // per_gpu))
    mem = cm.ClusterMemory(2048, int(labels.max()) + 1, temp=0.05,
                           momentum=0.1)
    mem.features = ours.memory.features.clone()
    params = [{'params': [v]} for _, v in ref_dp.named_parameters()
              if v.requires_grad]
    opt = torch.optim.Adam(params, lr=3.5e-4, weight_decay=5e-4)
    trainer = trainers.ClusterContrastTrainer(ref_dp, mem)
    batch_ref = (ref_views[0], None, labels, cams, torch.arange(batch))
    loader = _Repeat(batch_ref)
    t_ref = median_step_time(
        lambda: trainer.train(0, loader, opt, print_freq=10**6,
                              train_iters=1), args.timing_iters)
    _rows(report, args, batch, per_gpu, t_ours, t_ref)


def _rows(report, args, batch: int, per_gpu: int, t_ours: float,
          t_ref: float) -> None:
    setting = (f'ResNet-50, 256x128, batch {batch} (BN groups of '
               f'{per_gpu}), random images, {args.device}, '
               f'{torch.get_num_threads()} threads, median of '
               f'{args.timing_iters} after 1 warm-up')
    report.timing['ours'] = dict(s_per_iter=t_ours, setting=setting)
    report.timing['reference'] = dict(s_per_iter=t_ref, setting=setting)
    report.timing['ours / reference'] = dict(
        s_per_iter=t_ours / t_ref, setting='ratio')


class _Repeat:
    """An IterLoader that returns the same batch forever."""

    def __init__(self, batch) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return 1

    def next(self):
        return self.batch
