# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE: Inter-instance Contrastive Encoding (Chen et al., ICCV 2021)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmengine.dist import all_gather, all_reduce_params, get_world_size

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import ReIDDataSample
from ..utils.batch_shuffle import grouped_forward, shuffle_bn_forward
from ..utils.momentum_encoder import MomentumEncoder
from .base import BaseUSLReID

OptCfg = Optional[Union[dict, nn.Module]]


def _build(cfg: OptCfg) -> Optional[nn.Module]:
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` of every rank in rank order (no gradient)."""
    return torch.cat(all_gather(x.contiguous()), dim=0)


@MODELS.register_module()
class ICE(BaseUSLReID):
    r"""ICE for unsupervised person re-identification.

    Chen et al., "ICE: Inter-instance Contrastive Encoding for Unsupervised
    Person Re-identification", ICCV 2021; official code chenhao2345/ICE.
    Spec: ``../shared/docs/algorithms.md`` §2 (defaults follow the official
    code; the paper's variants are config switches, §2.12).

    An online encoder :math:`\theta_o` is trained by back-propagation; a
    momentum encoder :math:`\theta_m \leftarrow \alpha\theta_m +
    (1-\alpha)\theta_o` (:class:`MomentumEncoder`, ``momentum = 1 - alpha =
    0.001``, updated by :class:`MomentumUpdateHook` after each optimiser
    step) produces the features that are clustered each epoch
    (``PseudoLabelHook(feature_source='momentum')``), the frozen cluster and
    camera proxies (:class:`CameraProxyMemory`) and the in-batch keys. Each
    sample comes as three views ``inputs[view_order]`` = strong1, weak,
    strong2 (``MultiView``). With :math:`f` = raw online feature of strong1,
    :math:`q = \hat f`, :math:`k` = momentum strong2, :math:`w` = momentum
    weak (all momentum forwards under ShuffleBN):

    .. math::
        \mathcal{L} = \mathcal{L}_{agnostic}(f, p) + 0.5\,\mathcal{L}_{cross}
            (\hat f, P_{cam}) + \lambda_h\mathcal{L}_{h\_ins}(q, k)
            + \lambda_s\mathrm{KL}(Q(w)\,\|\,P(q, k)) .

    The weights live in the losses (``loss_weight``: 1, 0.5, 1, 10). A loss
    set to ``None`` is switched off (``camera_loss=None`` is
    ICE(agnostic)).

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder` (ResNet-50,
            average pooling, BNNeck).
        momentum (float): mmengine convention, weight of the NEW (online)
            parameters in each EMA step: paper alpha=0.999 => 0.001.
        momentum_buffer_mode (str): ``'own'`` (ICE: the momentum encoder keeps
            its own BN statistics), ``'copy'`` or ``'ema'``.
        num_bn_groups (int): ShuffleBN BN groups per rank for every momentum
            forward (4 on one process emulates the official 4-GPU
            DataParallel BN, §0.9/§2.8). Defaults to 1.
        online_bn_groups (int): BN groups of the online forward (contiguous
            chunks, as DataParallel splits the batch): 4 emulates the
            official 4 x 8 BN on one process. Defaults to 1.
        gather_keys (bool): Under DDP, all-gather the momentum keys, weak
            features, labels and cameras so that the in-batch losses and the
            per-camera sums see the global batch, exactly as the official
            DataParallel run computes them. Defaults to True.
        sync_momentum_buffers (bool): Under DDP, average the momentum
            encoder's floating-point BN buffers over the ranks after every
            EMA step, so all ranks cluster and evaluate with the same running
            statistics (each rank's ShuffleBN forwards see different data;
            DataParallel keeps a single copy). Defaults to True.
        proxy_memory (dict | nn.Module): :class:`CameraProxyMemory` config.
        agnostic_loss (dict, optional): :class:`AgnosticProxyLoss` (§2.3).
        camera_loss (dict, optional): :class:`CrossCameraProxyLoss` (§2.4).
        instance_loss (dict, optional): :class:`HardInstanceContrastiveLoss`
            (§2.5).
        consistency_loss (dict, optional):
            :class:`SoftInstanceConsistencyLoss` (§2.6).
        view_order (Sequence[int]): Indices of (strong1, weak, strong2) in the
            multi-view input. Defaults to ``(0, 1, 2)``.
        online_strong2 (bool): Also run the online encoder on strong2 (the
            official code does; no loss uses it, it only moves the online BN
            running statistics). Defaults to True.
        momentum_strong1 (bool): Also run the momentum encoder on strong1
            (official; unused by the losses, moves the momentum BN
            statistics). Defaults to True.
        data_preprocessor (dict | nn.Module, optional): See base.
        test_cfg (dict, optional): ``feat_source``; ICE evaluates the
            momentum encoder. Defaults to ``dict(feat_source='momentum')``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 momentum: float = 0.001,
                 momentum_buffer_mode: str = 'own',
                 num_bn_groups: int = 1,
                 online_bn_groups: int = 1,
                 gather_keys: bool = True,
                 sync_momentum_buffers: bool = True,
                 proxy_memory: OptCfg = dict(type='CameraProxyMemory'),
                 agnostic_loss: OptCfg = dict(type='AgnosticProxyLoss'),
                 camera_loss: OptCfg = dict(type='CrossCameraProxyLoss'),
                 instance_loss: OptCfg = dict(
                     type='HardInstanceContrastiveLoss'),
                 consistency_loss: OptCfg = dict(
                     type='SoftInstanceConsistencyLoss'),
                 view_order: Sequence[int] = (0, 1, 2),
                 online_strong2: bool = True,
                 momentum_strong1: bool = True,
                 data_preprocessor: OptCfg = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        test_cfg = {'feat_source': 'momentum', **(test_cfg or {})}
        super().__init__(
            encoder=encoder,
            data_preprocessor=data_preprocessor,
            test_cfg=test_cfg,
            init_cfg=init_cfg)
        self.momentum_encoder = MomentumEncoder(
            self.encoder, momentum=momentum, buffer_mode=momentum_buffer_mode)
        self.num_bn_groups = num_bn_groups
        self.online_bn_groups = online_bn_groups
        self.gather_keys = gather_keys
        self.sync_momentum_buffers = sync_momentum_buffers
        if isinstance(proxy_memory, dict):
            proxy_memory = dict(proxy_memory)
            proxy_memory.setdefault('feat_dim', self.encoder.feat_dim)
        self.proxy_memory = _build(proxy_memory)
        self.agnostic_loss = _build(agnostic_loss)
        self.camera_loss = _build(camera_loss)
        self.instance_loss = _build(instance_loss)
        self.consistency_loss = _build(consistency_loss)
        if len(view_order) != 3:
            raise ValueError('view_order must give (strong1, weak, strong2)')
        self.view_order = tuple(view_order)
        self.online_strong2 = online_strong2
        self.momentum_strong1 = momentum_strong1

    # ------------------------------------------------------------------
    # encoders
    def init_weights(self) -> None:
        """Initialise the online encoder, then copy it into the momentum one.

        ICE creates both networks with identical (ImageNet) weights; the
        deep copy made in ``__init__`` predates the pretrained loading, so it
        is synchronised here (parameters and buffers), on the first call only.
        """
        first_call = not self.is_init
        super().init_weights()
        if first_call:  # never clobber a loaded/trained momentum encoder
            self.momentum_encoder.sync(self.encoder)

    def get_encoder(self, source: str = 'student') -> nn.Module:
        """``'student'`` (online) or ``'momentum'`` encoder."""
        if source == 'momentum':
            return self.momentum_encoder
        return super().get_encoder(source)

    @torch.no_grad()
    def momentum_update(self, momentum: Optional[float] = None) -> None:
        """EMA step of the momentum encoder (after the optimiser step).

        Args:
            momentum (float, optional): Override (mmengine convention).
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
        """Momentum features of ``x`` under ShuffleBN (no gradient)."""
        return shuffle_bn_forward(self.momentum_encoder, x, self.num_bn_groups)

    # ------------------------------------------------------------------
    # pseudo-labels
    def set_pseudo_labels(self, result) -> None:
        """Store the labels and rebuild the (frozen) proxies.

        ``result.extras['features']`` must hold the ``(N, D)`` L2-normalised
        momentum features that were clustered and
        ``result.extras['camids']`` the ``(N,)`` camera ids (both put there
        by the ``PseudoLabelHook``).
        """
        super().set_pseudo_labels(result)
        extras = getattr(result, 'extras', None) or {}
        if 'features' not in extras or 'camids' not in extras:
            raise KeyError("ICE needs result.extras['features'] and "
                           "result.extras['camids'] from the PseudoLabelHook.")
        feats = F.normalize(torch.as_tensor(extras['features']).float(), dim=1)
        self.proxy_memory.reset(feats, result.labels,
                                torch.as_tensor(extras['camids']),
                                result.num_clusters)

    # ------------------------------------------------------------------
    # training
    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """ICE losses of one multi-view batch.

        Args:
            inputs (Tensor): ``(V, B, C, H, W)`` views (strong1, weak,
                strong2 at ``view_order``).
            data_samples (list[ReIDDataSample]): With ``sample_idx`` and
                ``camid`` meta fields.

        Returns:
            dict: ``loss_agnostic``, ``loss_cross``, ``loss_h_ins``,
            ``loss_s_ins`` (those enabled).
        """
        if inputs.dim() != 5 or inputs.shape[0] < 3:
            raise ValueError('ICE needs multi-view inputs (V>=3, B, C, H, W) '
                             f'from MultiView, got {tuple(inputs.shape)}')
        if self.proxy_memory.num_clusters == 0:
            raise RuntimeError('ICE: the proxy memory is empty; no clusters '
                               'were found (or set_pseudo_labels never ran).')
        i_s1, i_weak, i_s2 = self.view_order
        targets = self.get_targets(data_samples)
        device = targets.device

        # raw post-BN online features of strong1 (with gradient)
        feats = grouped_forward(self.encoder, inputs[i_s1],
                                self.online_bn_groups)
        if self.online_strong2:
            with torch.no_grad():  # official: only moves the BN statistics
                grouped_forward(self.encoder, inputs[i_s2],
                                self.online_bn_groups)
        keys = weak = None
        if self.momentum_strong1:
            self.momentum_forward(inputs[i_s1])  # official: BN stats only
        if self.instance_loss is not None or \
                self.consistency_loss is not None:
            keys = self.momentum_forward(inputs[i_s2])
        if self.consistency_loss is not None:
            weak = self.momentum_forward(inputs[i_weak])

        mem = self.proxy_memory
        cam_index = mem.camera_index(
            torch.tensor([s.camid for s in data_samples], device=device))
        world_size = get_world_size()
        gather = self.gather_keys and world_size > 1
        all_keys = _gather(keys) if gather and keys is not None else keys
        all_weak = _gather(weak) if gather and weak is not None else weak
        all_targets = _gather(targets) if gather else targets
        all_cams = _gather(cam_index) if gather else cam_index

        losses = dict()
        if self.agnostic_loss is not None:
            losses['loss_agnostic'] = self.agnostic_loss(
                feats, mem.centroids, targets)
        if self.camera_loss is not None:
            losses['loss_cross'] = self.camera_loss(
                feats,
                mem.proxies,
                mem.proxy_labels,
                targets,
                cam_index,
                mem.proxy_cams,
                batch_cam_index=all_cams,
                scale=float(world_size) if gather else 1.0)
        if self.instance_loss is not None:
            losses['loss_h_ins'] = self.instance_loss(feats, all_keys, targets,
                                                      all_targets)
        if self.consistency_loss is not None:
            losses['loss_s_ins'] = self.consistency_loss(
                feats, all_keys, weak, all_weak)
        return losses
