# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ShuffleBN for the momentum encoder (ICE, Chen et al., ICCV 2021).

Every forward pass of the momentum (EMA) encoder is run on a randomly
permuted batch and its output is un-permuted afterwards, so the samples that
share BatchNorm statistics are a random subset of the global batch instead of
the P×K identity blocks a rank receives (the BN statistics would otherwise
leak identity information: MoCo, He et al., CVPR 2020, Sec. 3.3,
https://arxiv.org/abs/1911.05722). Facts: ``docs/algorithms/ice.md#shufflebn``
and ``docs/algorithms/common.md#batchnorm-groups``.

Two mechanisms are combined:

* **Across ranks** (DDP): the inputs of all ranks are gathered, permuted
  with one permutation drawn on rank 0 and broadcast, and every rank
  forwards its own slice; the outputs are gathered again and each rank takes
  back the rows of its original samples. This part reuses mmpretrain's
  :func:`batch_shuffle_ddp` / :func:`batch_unshuffle_ddp` (built on
  ``mmengine.dist``, so it works with gloo on CPU and is a plain random
  permutation on one process).
* **BN groups on one process** (hand-written: neither mmengine, mmpretrain
  nor torch offers "ghost BatchNorm" for an arbitrary module): the (shuffled)
  local batch is split into ``num_groups`` equal chunks that are forwarded
  one after the other, so each chunk is normalised with its own batch
  statistics. With ``num_groups=4`` and a batch of 32 a single process
  reproduces the 4 × 8 BatchNorm of the official 4-GPU DataParallel run
  (``docs/algorithms/common.md#batchnorm-groups``). Running statistics
  are updated once per chunk by default (``running_stats='every_group'``);
  ``running_stats='first_group'`` keeps only the first chunk's update, as
  DataParallel does (its replica on GPU 0 owns the module's buffers, the
  other replicas' copies are discarded): the parity runs
  (``docs/parity.md``) measure both.
"""
from typing import Callable

import torch
from torch.func import functional_call
from mmpretrain.models.utils.batch_shuffle import (batch_shuffle_ddp,
                                                   batch_unshuffle_ddp)
from torch import Tensor

__all__ = [
    'batch_shuffle_ddp', 'batch_unshuffle_ddp', 'grouped_forward',
    'shuffle_bn_forward', 'RUNNING_STATS'
]

#: Which BN groups move the running statistics (see the module docstring).
RUNNING_STATS = ('every_group', 'first_group')


def grouped_forward(module: Callable[[Tensor], Tensor],
                    x: Tensor,
                    num_groups: int = 1,
                    running_stats: str = 'every_group') -> Tensor:
    """Forward ``x`` in ``num_groups`` consecutive chunks (ghost BatchNorm).

    Args:
        module (Callable): The network, e.g. the momentum encoder.
        x (Tensor): Inputs of shape ``(B, ...)``.
        num_groups (int): Number of BN groups; ``B`` must be divisible by it.
            Defaults to 1 (one forward of the whole batch).
        running_stats (str): ``'every_group'``: every chunk updates the BN
            running statistics; ``'first_group'``: only the first one does
            (DataParallel; the other chunks run on throw-away copies of the
            buffers, sharing the parameters and their gradients).

    Returns:
        Tensor: ``module`` outputs for the whole batch, in input order.
    """
    if running_stats not in RUNNING_STATS:
        raise ValueError(f'running_stats must be one of {RUNNING_STATS}, '
                         f'got {running_stats!r}')
    if num_groups <= 1:
        return module(x)
    batch_size = x.shape[0]
    if batch_size % num_groups != 0:
        raise ValueError(f'batch size {batch_size} is not divisible by '
                         f'num_groups={num_groups}')
    chunks = x.chunk(num_groups)
    if running_stats == 'every_group':
        return torch.cat([module(chunk) for chunk in chunks], dim=0)
    outs = [module(chunks[0])]
    for chunk in chunks[1:]:
        buffers = {k: b.clone() for k, b in module.named_buffers()}
        outs.append(functional_call(module, buffers, (chunk, ), strict=False))
    return torch.cat(outs, dim=0)


def shuffle_bn_forward(module: Callable[[Tensor], Tensor],
                       x: Tensor,
                       num_groups: int = 1,
                       running_stats: str = 'every_group',
                       shuffle: bool = True) -> Tensor:
    """Forward ``x`` through ``module`` under ShuffleBN.

    The batch is shuffled across all ranks (a random permutation on one
    process), forwarded in ``num_groups`` BN groups per rank, and unshuffled,
    so output row ``i`` always belongs to input row ``i``. Call it under
    ``torch.no_grad()`` (the collectives are not differentiable).

    With ``shuffle=False`` nothing is permuted or exchanged between ranks:
    each rank forwards its own batch in ``num_groups`` consecutive chunks
    (:func:`grouped_forward`), which is how DataParallel splits a batch over
    its GPUs (the unofficial DCMIP code's momentum forward: contiguous
    chunks of P x K identity blocks, no shuffle). No random number is drawn.

    Args:
        module (Callable): The network, e.g. the momentum encoder.
        x (Tensor): This rank's inputs ``(B, ...)``; ``B`` must be equal on
            every rank.
        num_groups (int): BN groups per rank
            (``docs/algorithms/common.md#batchnorm-groups``). Defaults to 1.
        running_stats (str): See :func:`grouped_forward`.
        shuffle (bool): Shuffle before the grouped forward (ShuffleBN).
            Defaults to True.

    Returns:
        Tensor: Outputs ``(B, ...)`` aligned with ``x``.
    """
    if not shuffle:
        return grouped_forward(module, x, num_groups, running_stats)
    x_shuffled, idx_unshuffle = batch_shuffle_ddp(x)
    out = grouped_forward(module, x_shuffled, num_groups, running_stats)
    return batch_unshuffle_ddp(out, idx_unshuffle)
