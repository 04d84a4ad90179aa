# Copyright (c) mmreid_usl contributors. All rights reserved.
"""A training batch defined over all processes (the same run on 1 or N)."""
import copy
from typing import Any, Dict, Optional, Tuple

from .cfg_options import ConfigOptionError


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


def check_batch_size_overrides(cfg: Dict,
                               options: Optional[Dict[str, Any]]) -> None:
    """Refuse a ``batch_size`` override that a ``global_batch_size`` voids.

    In a dataloader with ``global_batch_size`` (the paper configs), the
    batch of each process is ``global_batch_size / processes``;
    ``batch_size`` only states the layout the sampler's
    ``samples_per_epoch`` refers to (iterations per epoch =
    ``samples_per_epoch / batch_size``). ``--cfg-options
    train_dataloader.batch_size=16`` alone therefore kept the global batch
    of 256 and made the epoch 16 times longer. Overriding ``batch_size``
    together with ``global_batch_size`` (a number, or None for a batch per
    process) is accepted.

    Args:
        cfg (dict | Config): The config before the options are merged.
        options (dict, optional): ``{dotted key: value}`` of
            ``--cfg-options``.

    Raises:
        ConfigOptionError: ``<loader>.batch_size`` is overridden alone while
            the config's ``<loader>.global_batch_size`` is set.
    """
    for key, value in (options or {}).items():
        loader_key, _, field = key.partition('.')
        if field != 'batch_size' or \
                f'{loader_key}.global_batch_size' in options:
            continue
        loader = cfg.get(loader_key) if hasattr(cfg, 'get') else None
        total = loader.get('global_batch_size') if isinstance(
            loader, dict) else None
        if total is None:
            continue
        instances = (loader.get('sampler') or {}).get('num_instances')
        multiple = (f' (a multiple of num_instances={instances} and of the '
                    'number of processes)' if instances else '')
        raise ConfigOptionError(
            f'--cfg-options {key}={value!r} would not change the batch: the '
            f'config sets {loader_key}.global_batch_size={total}, the batch '
            'of one step over all processes, which gives each process '
            f'{total} / processes images; {loader_key}.batch_size only '
            'sets the epoch length (samples_per_epoch / batch_size '
            'iterations). For a batch of '
            f'{value} over all processes use {loader_key}.global_batch_size='
            f'{value}{multiple}; for {value} per process add '
            f'{loader_key}.global_batch_size=None.')
