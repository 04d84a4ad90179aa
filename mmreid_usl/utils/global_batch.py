# Copyright (c) mmreid_usl contributors. All rights reserved.
"""A training batch defined over all processes (the same run on 1 or N)."""
import copy
from typing import Optional, Tuple


def resolve_global_batch(dataloader_cfg: dict,
                         world_size: int,
                         bn_group_size: Optional[int] = None
                         ) -> Tuple[dict, Optional[str]]:
    """Turn ``global_batch_size`` into this process's batch and epoch length.

    A dataloader config may give ``global_batch_size`` (the P x K batch of
    one optimiser step summed over all processes, e.g. 256 = 16 ids x 16 for
    Cluster Contrast). Each of ``world_size`` processes then loads
    ``global_batch_size // world_size`` images, and the sampler's
    ``samples_per_epoch`` is rescaled so that the number of iterations per
    epoch stays the one the config states
    (``samples_per_epoch / batch_size`` of the config; a named length such
    as ``'clusters'`` is left to the sampler, which divides it by the
    number of processes). Together with the
    model's ``bn_group_size`` (images per BatchNorm group), 1, 2, 4 or 8
    processes train the same global batch with the same BN statistics.

    Args:
        dataloader_cfg (dict): A dataloader config (not modified).
        world_size (int): Number of processes.
        bn_group_size (int, optional): The model's BN group size, checked
            to divide the per-process batch.

    Returns:
        tuple[dict, str | None]: The config for this process (without
        ``global_batch_size``) and a one-line description, or the config
        unchanged and None when it has no ``global_batch_size``.

    Raises:
        ValueError: If the global batch does not split evenly over the
            processes, the sampler's instances or the BN groups.
    """
    cfg = copy.deepcopy(dataloader_cfg)
    total = cfg.pop('global_batch_size', None)
    if total is None:
        return cfg, None
    if total % world_size:
        raise ValueError(f'global_batch_size={total} does not split over '
                         f'{world_size} processes.')
    per_process = total // world_size
    batch_size = cfg.get('batch_size')
    sampler = cfg.get('sampler') or {}
    instances = sampler.get('num_instances')
    if instances and per_process % instances:
        raise ValueError(
            f'global_batch_size={total} over {world_size} processes gives '
            f'{per_process} images per process, not a multiple of '
            f'num_instances={instances} (whole identities per process).')
    if bn_group_size and per_process % bn_group_size and \
            per_process > bn_group_size:
        raise ValueError(
            f'{per_process} images per process is not a multiple of the '
            f'model\'s bn_group_size={bn_group_size}.')
    iters = None
    # a named length ('dataset', 'clusters') is split over the processes by
    # the sampler itself (PseudoIdentitySampler)
    if isinstance(sampler.get('samples_per_epoch'), int) and batch_size:
        if sampler['samples_per_epoch'] % batch_size:
            raise ValueError(
                f'samples_per_epoch={sampler["samples_per_epoch"]} is not a '
                f'multiple of batch_size={batch_size}.')
        iters = sampler['samples_per_epoch'] // batch_size
        sampler['samples_per_epoch'] = iters * per_process
    cfg['batch_size'] = per_process
    groups = ''
    if bn_group_size:
        groups = (f', BN groups of {min(bn_group_size, per_process)} '
                  f'({max(1, per_process // bn_group_size)} per process)')
    iters_msg = f', {iters} iterations per epoch' if iters else ''
    return cfg, (f'global batch {total} over {world_size} process(es): '
                 f'{per_process} images per process{iters_msg}{groups}')
