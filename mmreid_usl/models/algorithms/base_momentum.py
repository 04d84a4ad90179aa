# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Base class of the algorithms with a momentum (EMA) encoder."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params, get_world_size

from mmreid_usl.utils.deprecation import renamed_keys, renamed_kwargs
from ..utils.batch_shuffle import shuffle_bn_forward
from ..utils.momentum_encoder import MomentumEncoder
from .base import TEST_CFG_RENAMES, BaseUSLReID, num_bn_groups


class BaseMomentumUSLReID(BaseUSLReID):
    r"""A student encoder plus a momentum (EMA) copy of it.

    The momentum encoder :math:`\theta_m \leftarrow (1 - m)\,\theta_m +
    m\,\theta_s` follows the student after every optimiser step (the
    ``MomentumUpdateHook`` calls :meth:`momentum_update`). It is what ICE
    (Chen et al., ICCV 2021, https://arxiv.org/abs/2103.16364) and DCMIP
    (Zou et al., ICCV 2023) cluster, build proxies from and deploy.

    **Convention.** ``momentum`` is mmengine's: the weight of the NEW
    (student) parameters. A paper's :math:`\alpha = 0.999` (weight of the
    old ones) is ``momentum=0.001``.

    What this base owns so an algorithm only writes its losses:

    - the encoder pair, synchronised once after weight initialisation (and
      re-initialised on demand by :meth:`reinit_momentum_encoder`);
    - :meth:`get_encoder` (``'student'``, ``'momentum'``);
    - :meth:`momentum_update`, which under DDP also averages the momentum
      encoder's floating-point BN buffers over the ranks
      (``sync_momentum_buffers``) so every rank clusters and evaluates one
      network;
    - :meth:`momentum_forward`: ShuffleBN over all ranks, then BN groups of
      ``momentum_bn_group_size`` images per rank, no gradient (with
      ``bn_group_size`` of the student, groups of 8 on one process with a
      batch of 32 reproduce the official 4-GPU x 8 DataParallel BN);
      ``momentum_shuffle_bn=False`` leaves out the shuffle (contiguous
      chunks, as a DataParallel forward without ShuffleBN).

    The algorithm's config base declares the loop and the hook that go
    with it: ``val_cfg = dict(type='MomentumValLoop')`` (student and
    momentum metrics) and ``default_hooks.momentum_update``.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder`.
        momentum (float): Weight of the student in each EMA step. Defaults
            to 0.001 (alpha = 0.999).
        momentum_buffer_mode (str): ``'own'`` (the momentum encoder keeps its
            own BN statistics, ICE), ``'copy'`` or ``'ema'``. Defaults to
            ``'own'``.
        momentum_bn_group_size (int, optional): Images per BN group of every
            momentum forward (after the shuffle). None: the whole batch.
        momentum_shuffle_bn (bool): Shuffle the batch across the ranks before
            every momentum forward (ShuffleBN, ICE). False: each rank
            forwards its own batch in consecutive chunks of
            ``momentum_bn_group_size`` (the unofficial DCMIP code, whose
            DataParallel EMA forward normalises contiguous 64-image chunks
            of 4 identities x 16). Defaults to True.
        sync_momentum_buffers (bool): Under DDP, average the momentum BN
            buffers over the ranks after every EMA step. Defaults to True.
        cluster_encoder (str): Encoder whose features are clustered.
            Defaults to ``'momentum'``.
        **kwargs: ``labels_from``, ``bn_group_size``,
            ``data_preprocessor``, ``test_cfg`` (``encoder`` defaults to
            ``'momentum'``), ``init_cfg``; the deprecated names of
            :class:`BaseUSLReID` (``cluster_feat_source``,
            ``test_cfg.feat_source``...).
    """

    @renamed_kwargs(cluster_feat_source='cluster_encoder')
    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 momentum: float = 0.001,
                 momentum_buffer_mode: str = 'own',
                 momentum_bn_group_size: Optional[int] = None,
                 momentum_shuffle_bn: bool = True,
                 sync_momentum_buffers: bool = True,
                 cluster_encoder: str = 'momentum',
                 test_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        test_cfg = renamed_keys(f'{type(self).__name__}.test_cfg', test_cfg,
                                TEST_CFG_RENAMES, dict(encoder='momentum'))
        test_cfg = {'encoder': 'momentum', **(test_cfg or {})}
        super().__init__(
            encoder=encoder,
            cluster_encoder=cluster_encoder,
            test_cfg=test_cfg,
            **kwargs)
        if momentum_bn_group_size is not None and (not isinstance(
                momentum_bn_group_size, int) or momentum_bn_group_size < 1):
            raise ValueError('momentum_bn_group_size must be None or a '
                             f'positive int, got {momentum_bn_group_size!r}')
        self.momentum_encoder = MomentumEncoder(
            self.encoder, momentum=momentum, buffer_mode=momentum_buffer_mode)
        self.momentum_bn_group_size = momentum_bn_group_size
        self.momentum_shuffle_bn = bool(momentum_shuffle_bn)
        self.sync_momentum_buffers = sync_momentum_buffers

    @property
    def encoder_names(self) -> Tuple[str, ...]:
        """tuple[str]: ``('student', 'momentum')``."""
        return ('student', 'momentum')

    @property
    def momentum(self) -> float:
        """float: Weight of the student in each EMA step."""
        return self.momentum_encoder.momentum

    def init_weights(self) -> None:
        """Initialise the student, then copy it into the momentum encoder.

        The deep copy made in ``__init__`` predates pretrained loading, so
        it is synchronised here (parameters and buffers), on the first call
        only: a loaded or trained momentum encoder is never clobbered.
        """
        first_call = not self.is_init
        super().init_weights()
        if first_call:
            self.momentum_encoder.sync(self.encoder)

    @torch.no_grad()
    def reinit_momentum_encoder(self) -> None:
        """Copy the student's parameters and buffers into the momentum
        encoder (e.g. DCMIP at every re-clustering)."""
        self.momentum_encoder.sync(self.encoder)

    @renamed_kwargs(source='encoder')
    def get_encoder(self, encoder: str = 'student') -> nn.Module:
        """``'student'`` or ``'momentum'`` encoder."""
        if encoder == 'momentum':
            return self.momentum_encoder
        return super().get_encoder(encoder)

    @torch.no_grad()
    def momentum_update(self, momentum: Optional[float] = None) -> None:
        """EMA step of the momentum encoder (after the optimiser step).

        Args:
            momentum (float, optional): Override for this step (mmengine
                convention).
        """
        self.momentum_encoder.update_parameters(self.encoder, momentum)
        if self.sync_momentum_buffers and get_world_size() > 1:
            buffers = [
                b for b in self.momentum_encoder.module.buffers()
                if b.dtype.is_floating_point
            ]
            all_reduce_params(buffers, op='mean')

    @torch.no_grad()
    def momentum_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Momentum features of ``x`` in BN groups, under ShuffleBN unless
        ``momentum_shuffle_bn=False`` (no gradient)."""
        return shuffle_bn_forward(
            self.momentum_encoder,
            x,
            num_bn_groups(len(x), self.momentum_bn_group_size),
            self.bn_running_stats,
            shuffle=self.momentum_shuffle_bn)
