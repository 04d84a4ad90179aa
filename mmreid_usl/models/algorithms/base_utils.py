# Copyright (c) mmreid_usl contributors. All rights reserved.
"""What the algorithms share besides :class:`BaseUSLReID`: the non-finite
loss error and the BatchNorm groups of a batch."""
from typing import Optional


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN / inf; raised before the optimiser step.

    ``tools/train.py`` catches it and prints the command that restarts from
    the run's last good checkpoint with a lower learning rate
    (:func:`mmreid_usl.engine.checkpointing.restart_advice`).

    Args:
        terms (Mapping[str, float]): The loss terms of the batch, e.g.
            ``{'loss': nan, 'loss_cluster': nan}``; tensors are detached and
            turned into floats (no ``requires_grad`` warning).
    """

    def __init__(self, terms) -> None:
        self.terms = {k: _scalar(v) for k, v in terms.items()}
        text = ', '.join(f'{k}={v:.4g}' for k, v in self.terms.items())
        super().__init__(
            f'Non-finite loss ({text}); training stopped before the '
            'optimiser step, so no saved weight is corrupted.')


def _scalar(value) -> float:
    """A loss term as a float (a tensor of the graph is detached first)."""
    detach = getattr(value, 'detach', None)
    return float(detach() if detach is not None else value)


def num_bn_groups(batch_size: int, group_size: Optional[int]) -> int:
    """Number of BN groups of ``group_size`` images in a batch.

    Raises:
        ValueError: If ``batch_size`` is not a multiple of ``group_size``.
    """
    if group_size is None or group_size >= batch_size:
        return 1
    if batch_size % group_size:
        raise ValueError(f'batch of {batch_size} images is not a multiple of '
                         f'the BN group size {group_size}')
    return batch_size // group_size
