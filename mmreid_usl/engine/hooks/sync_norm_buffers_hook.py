# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Averages the normalisation layers' running statistics over the ranks."""
from typing import List

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params, get_world_size
from mmengine.hooks import Hook
from torch.nn.modules.batchnorm import _NormBase

from mmreid_usl.registry import HOOKS
from mmreid_usl.utils.misc import get_ori_model


def norm_running_stats(model: nn.Module) -> List[torch.Tensor]:
    """Floating-point running statistics of every BN/IN layer of ``model``.

    ``num_batches_tracked`` (an integer counter, identical on every rank) is
    left out.
    """
    stats = []
    for module in model.modules():
        if isinstance(module, _NormBase) and module.track_running_stats:
            for buf in (module.running_mean, module.running_var):
                if buf is not None and buf.dtype.is_floating_point:
                    stats.append(buf)
    return stats


@HOOKS.register_module()
class SyncNormBuffersHook(Hook):
    """Make BN running statistics identical on every rank after each epoch.

    Under DDP (mmengine's wrapper uses ``broadcast_buffers=False``) each rank
    updates its BN running mean/var from its own part of the batch, so the
    ranks drift apart; they would then extract different features for the
    next clustering and the evaluation, and the checkpoint would hold rank
    0's statistics only. The official repositories train with DataParallel,
    which keeps one copy. This hook averages the statistics over the ranks
    after every training epoch (before validation, checkpointing and the
    next clustering), so an N-process run clusters and evaluates one model.

    Unlike mmengine's ``SyncBuffersHook`` it touches only the floating-point
    running statistics of normalisation layers: pseudo-label buffers (int),
    memories and proxies (already identical on every rank, rebuilt from
    broadcast labels) stay bit-identical instead of being re-averaged.
    Non-distributed runs are unaffected.
    """

    priority = 'ABOVE_NORMAL'  # before checkpointing / validation

    def after_train_epoch(self, runner) -> None:
        """Average the running statistics over the ranks."""
        if get_world_size() == 1:
            return
        stats = norm_running_stats(get_ori_model(runner.model))
        if stats:
            all_reduce_params(stats, op='mean')
