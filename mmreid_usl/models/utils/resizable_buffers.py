# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Buffers whose size changes with every re-clustering."""
from typing import Dict, Iterable

import torch
import torch.nn as nn


def resize_buffers_for_loading(module: nn.Module, state_dict: Dict,
                               prefix: str, names: Iterable[str]) -> None:
    """Give ``module``'s buffers the shape they have in ``state_dict``.

    Memories and pseudo-label buffers are re-sized after every clustering.
    ``nn.Module`` refuses to load a tensor of another shape and MMEngine's
    non-strict loading only logs the mismatch, silently keeping the stale
    buffer. Call this at the start of ``_load_from_state_dict`` so the
    checkpointed buffer is loaded whatever its size.

    Args:
        module (nn.Module): The module owning the buffers.
        state_dict (dict): The state dict being loaded.
        prefix (str): The module's key prefix in ``state_dict``.
        names (Iterable[str]): Names of the resizable buffers.
    """
    for name in names:
        key = prefix + name
        if key not in state_dict:
            continue
        saved = state_dict[key]
        current = getattr(module, name)
        if current is None or current.shape != saved.shape:
            device = current.device if current is not None else saved.device
            dtype = current.dtype if current is not None else saved.dtype
            module.register_buffer(
                name, torch.empty(saved.shape, dtype=dtype, device=device))
