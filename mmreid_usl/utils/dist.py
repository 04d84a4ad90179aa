# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Distributed helpers on top of :mod:`mmengine.dist`."""
import torch
from mmengine import dist


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor from every rank along dim 0, in rank order.

    Unlike :func:`mmengine.dist.all_gather`, the tensors may have different
    lengths along dim 0 (they are padded for the collective and cut back).
    On one process the tensor is returned as is.

    Args:
        tensor (Tensor): ``(n_rank, ...)`` on this rank.

    Returns:
        Tensor: ``(sum of n_rank, ...)``, identical on every rank.
    """
    if dist.get_world_size() == 1:
        return tensor
    sizes = dist.all_gather(
        torch.tensor([tensor.shape[0]], device=tensor.device))
    sizes = [int(s.item()) for s in sizes]
    max_size = max(sizes)
    if tensor.shape[0] < max_size:
        pad = tensor.new_zeros((max_size - tensor.shape[0], ) +
                               tuple(tensor.shape[1:]))
        tensor = torch.cat([tensor, pad])
    parts = dist.all_gather(tensor.contiguous())
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])
