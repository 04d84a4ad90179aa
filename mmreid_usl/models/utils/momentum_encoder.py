# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The momentum (EMA) encoder used inside the training forward of ICE."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseAveragedModel
from torch import Tensor

from mmreid_usl.registry import MODELS

BUFFER_MODES = ('own', 'copy', 'ema')


@MODELS.register_module()
class MomentumEncoder(BaseAveragedModel):
    r"""Exponential moving average of an encoder, used as a teacher network.

    ICE (Chen et al., "ICE: Inter-instance Contrastive Encoding for
    Unsupervised Person Re-identification", ICCV 2021, Eq. 1) updates the
    momentum encoder after every optimiser step as

    .. math::
        \theta_m \leftarrow \alpha\,\theta_m + (1-\alpha)\,\theta_o,
        \qquad \alpha = 0.999 .

    **Convention.** ``momentum`` follows mmengine's
    :class:`~mmengine.model.ExponentialMovingAverage`: it is the weight of the
    NEW (online) parameters,
    ``avg = (1 - momentum) * avg + momentum * online``. The paper's
    :math:`\alpha = 0.999` is therefore ``momentum=0.001``.

    Differences from mmengine's EMA (which is an evaluation-only copy):

    - the first update is already an EMA step (mmengine copies the source at
      step 0); the two networks are synchronised once by :meth:`sync` after
      weight initialisation, as ICE creates them with identical weights;
    - ``buffer_mode='own'`` (ICE): BatchNorm running statistics are NOT
      copied from the online encoder; the momentum encoder stays in train
      mode during training (``model.train()`` propagates to it), so its
      running statistics evolve from its own (ShuffleBN) forwards.
      ``'copy'`` copies the buffers each update (mmengine's default) and
      ``'ema'`` averages them like parameters.

    The parameters never require gradients (DDP ignores them) and the wrapped
    network is part of the state dict under ``<name>.module.*``, so
    checkpoints and resume restore it exactly.

    Args:
        model (nn.Module): The online encoder; a deep copy is averaged.
        momentum (float): Weight of the online parameters in each update
            (``1 - alpha``). Defaults to 0.001 (ICE's alpha = 0.999).
        interval (int): Update every ``interval`` calls. Defaults to 1.
        device (torch.device, optional): Where to keep the copy.
            Defaults to None (same as ``model``).
        buffer_mode (str): ``'own'``, ``'copy'`` or ``'ema'``, see above.
            Defaults to ``'own'``.
    """

    def __init__(self,
                 model: nn.Module,
                 momentum: float = 0.001,
                 interval: int = 1,
                 device: Optional[torch.device] = None,
                 buffer_mode: str = 'own') -> None:
        if buffer_mode not in BUFFER_MODES:
            raise ValueError(f'buffer_mode must be one of {BUFFER_MODES}, '
                             f'got {buffer_mode!r}')
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f'momentum must be in [0, 1], got {momentum}')
        super().__init__(
            model, interval, device, update_buffers=buffer_mode == 'ema')
        self.momentum = momentum
        self.buffer_mode = buffer_mode

    def avg_func(self, averaged_param: Tensor, source_param: Tensor,
                 steps: int) -> None:
        """In-place ``avg = (1 - momentum) * avg + momentum * source``.

        Args:
            averaged_param (Tensor): The averaged parameter (updated).
            source_param (Tensor): The online parameter.
            steps (int): Number of previous updates (unused).
        """
        averaged_param.lerp_(source_param, self.momentum)

    @torch.no_grad()
    def update_parameters(self,
                          model: nn.Module,
                          momentum: Optional[float] = None) -> None:
        """One EMA step towards ``model`` (call after the optimiser step).

        Args:
            model (nn.Module): The online encoder.
            momentum (float, optional): Override of ``self.momentum`` for this
                step (e.g. a schedule). Defaults to None.
        """
        if self.steps % self.interval == 0:
            old = self.momentum
            if momentum is not None:
                self.momentum = momentum
            src = (
                model.state_dict(keep_vars=True)
                if self.update_buffers else dict(model.named_parameters()))
            for name, p_avg in self.avg_parameters.items():
                if p_avg.dtype.is_floating_point:
                    self.avg_func(p_avg.data, src[name].data.to(p_avg.device),
                                  int(self.steps))
            self.momentum = old
            if self.buffer_mode == 'copy':
                for b_avg, b_src in zip(self.module.buffers(),
                                        model.buffers()):
                    b_avg.data.copy_(b_src.data.to(b_avg.device))
        self.steps += 1

    @torch.no_grad()
    def sync(self, model: nn.Module) -> None:
        """Copy every parameter and buffer of ``model`` (identical init).

        Args:
            model (nn.Module): The online encoder.
        """
        self.module.load_state_dict(model.state_dict())
