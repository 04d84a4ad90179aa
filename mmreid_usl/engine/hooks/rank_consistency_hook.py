# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Checks that every rank holds the same model state."""
import hashlib
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmreid_usl.registry import HOOKS
from mmreid_usl.utils.misc import get_ori_model


def state_digests(state: Dict[str, torch.Tensor],
                  prefixes: Optional[Sequence[str]] = None
                  ) -> Dict[str, str]:
    """SHA-1 of every tensor of ``state`` (optionally only those whose name
    starts with one of ``prefixes``), computed on the tensor's bytes."""
    out = {}
    for name, value in state.items():
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        if not isinstance(value, torch.Tensor):
            continue
        data = value.detach().cpu().contiguous().reshape(-1)
        out[name] = hashlib.sha1(
            data.view(torch.uint8).numpy().tobytes() if data.numel() else
            b'').hexdigest() + f':{tuple(value.shape)}:{value.dtype}'
    return out


@HOOKS.register_module()
class RankConsistencyHook(Hook):
    """Verify after every training epoch that all ranks agree bit for bit.

    The toolbox's distributed design keeps the whole training state
    identical on every rank (clustering on rank 0 and broadcast, all-gathered
    memory updates, reduced loss statistics, synchronised BN buffers). This
    hook proves it on a real run: after each epoch every rank hashes its
    model's ``state_dict`` (parameters and buffers: memories, pseudo-labels,
    GDS statistics, BN statistics), rank 0 gathers the digests and the hook
    logs ``rank consistency: N tensors identical on W ranks`` — or raises
    (``on_mismatch='raise'``) / warns naming the tensors that differ. It is a
    diagnostic: one ``all_gather_object`` of short strings per epoch.
    Written by hand: neither mmengine nor PyTorch has such a check.

    Args:
        prefixes (Sequence[str], optional): Only check the state entries
            whose name starts with one of these (e.g. ``['loss_gds.']``).
            Defaults to None (everything).
        log_values (Sequence[str]): Names of scalar entries whose values are
            logged with the check (e.g. the GDS means). Defaults to ().
        on_mismatch (str): ``'raise'`` or ``'warn'``. Defaults to 'raise'.
    """

    # after SyncNormBuffersHook and the momentum / pseudo-label hooks
    priority = 'LOW'

    def __init__(self,
                 prefixes: Optional[Sequence[str]] = None,
                 log_values: Sequence[str] = (),
                 on_mismatch: str = 'raise') -> None:
        if on_mismatch not in ('raise', 'warn'):
            raise ValueError(
                f"on_mismatch must be 'raise' or 'warn', got {on_mismatch!r}")
        self.prefixes = list(prefixes) if prefixes else None
        self.log_values = list(log_values)
        self.on_mismatch = on_mismatch

    def check(self, runner) -> List[str]:
        """Gather the digests; returns the names that differ from rank 0."""
        state = get_ori_model(runner.model).state_dict()
        missing = [n for n in self.log_values if n not in state]
        if missing:
            raise KeyError(f'RankConsistencyHook: log_values {missing} are '
                           'not entries of the model state_dict')
        digests = state_digests(state, self.prefixes)
        gathered = all_gather_object(digests)
        world = get_world_size()
        ref = gathered[0]
        differ = sorted({
            name
            for other in gathered[1:]
            for name in set(ref) | set(other)
            if ref.get(name) != other.get(name)
        })
        values = ', '.join(f'{n}={float(state[n]):.6g}'
                           for n in self.log_values)
        if differ:
            msg = (f'rank consistency: {len(differ)} of {len(ref)} tensors '
                   f'differ across {world} ranks: {differ[:10]}')
            if self.on_mismatch == 'raise':
                raise RuntimeError(msg)
            print_log(msg, logger='current', level=30)
        elif get_rank() == 0:
            print_log(
                f'rank consistency (epoch {runner.epoch + 1}): '
                f'{len(ref)} tensors identical on {world} ranks' +
                (f'; {values}' if values else ''),
                logger='current')
        return differ

    def after_train_epoch(self, runner) -> None:
        self.check(runner)
