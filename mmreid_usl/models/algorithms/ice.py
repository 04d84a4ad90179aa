# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE: Inter-instance Contrastive Encoding (Chen et al., ICCV 2021)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.dist import get_world_size

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import ReIDDataSample
from mmreid_usl.utils.dist import all_gather_cat
from .base_momentum import BaseMomentumUSLReID

OptCfg = Optional[Union[dict, nn.Module]]


@MODELS.register_module()
class ICE(BaseMomentumUSLReID):
    r"""ICE for unsupervised person re-identification.

    Chen et al., "ICE: Inter-instance Contrastive Encoding for Unsupervised
    Person Re-identification", ICCV 2021 (https://arxiv.org/abs/2103.16364);
    official code https://github.com/chenhao2345/ICE. Defaults follow the
    official code; the paper's variants are config switches
    (``docs/algorithms/ice.md``).

    A student encoder :math:`\theta_o` is trained by back-propagation; the
    momentum encoder of :class:`BaseMomentumUSLReID`
    (:math:`\theta_m \leftarrow \alpha\theta_m + (1-\alpha)\theta_o`,
    ``momentum = 1 - alpha = 0.001``) produces the features that are
    clustered each epoch (``cluster_encoder='momentum'``), the frozen
    cluster and camera proxies (:class:`CameraProxyMemory`) and the in-batch
    keys. Each sample comes as three views ``inputs[view_order]`` =
    strong1, weak, strong2 (``MultiView``). With :math:`f` = raw student
    feature of strong1, :math:`q = \hat f`, :math:`k` = momentum strong2,
    :math:`w` = momentum weak (all momentum forwards under ShuffleBN):

    .. math::
        \mathcal{L} = \mathcal{L}_{agnostic}(f, p) + 0.5\,\mathcal{L}_{cross}
            (\hat f, P_{cam}) + \lambda_h\mathcal{L}_{h\_ins}(q, k)
            + \lambda_s\mathrm{KL}(Q(w)\,\|\,P(q, k)) .

    The weights live in the losses (``loss_weight``: 1, 0.5, 1, 10); the
    log keys are the argument names. A loss set to ``None`` is switched off
    (``loss_cross=None`` is ICE(agnostic)).

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder` (ResNet-50,
            average pooling, BNNeck).
        proxy_memory (dict | nn.Module): :class:`CameraProxyMemory` config
            (``feat_dim`` defaults to the encoder's).
        loss_agnostic (dict, optional): :class:`AgnosticProxyLoss`.
        loss_cross (dict, optional): :class:`CrossCameraProxyLoss`.
        loss_h_ins (dict, optional): :class:`HardInstanceContrastiveLoss`.
        loss_s_ins (dict, optional): :class:`SoftInstanceConsistencyLoss`.
        gather_keys (bool): Under DDP, all-gather the momentum keys, weak
            features, labels and cameras so that the in-batch losses and the
            per-camera sums see the global batch, exactly as the official
            DataParallel run computes them. Defaults to True.
        view_order (Sequence[int]): Indices of (strong1, weak, strong2) in the
            multi-view input. Defaults to ``(0, 1, 2)``.
        student_strong2 (bool): Also run the student on strong2 (the official
            code does; no loss uses it, it only moves the student's BN
            running statistics). Defaults to True.
        momentum_strong1 (bool): Also run the momentum encoder on strong1
            (official; unused by the losses, moves the momentum BN
            statistics). Defaults to True.
        **kwargs: ``momentum`` (mmengine convention, weight of the NEW
            parameters: 0.001), ``momentum_buffer_mode`` (``'own'``),
            ``momentum_bn_group_size``, ``bn_group_size``,
            ``sync_momentum_buffers``, ``cluster_encoder``
            (``'momentum'``), ``labels_from``, ``data_preprocessor``,
            ``test_cfg`` (``encoder='momentum'``), ``init_cfg`` of
            :class:`BaseMomentumUSLReID`.
    """

    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 proxy_memory: OptCfg = dict(type='CameraProxyMemory'),
                 loss_agnostic: OptCfg = dict(type='AgnosticProxyLoss'),
                 loss_cross: OptCfg = dict(type='CrossCameraProxyLoss'),
                 loss_h_ins: OptCfg = dict(
                     type='HardInstanceContrastiveLoss'),
                 loss_s_ins: OptCfg = dict(
                     type='SoftInstanceConsistencyLoss'),
                 gather_keys: bool = True,
                 view_order: Sequence[int] = (0, 1, 2),
                 student_strong2: bool = True,
                 momentum_strong1: bool = True,
                 **kwargs) -> None:
        super().__init__(encoder=encoder, **kwargs)
        self.gather_keys = gather_keys
        self.proxy_memory = self._build_memory(proxy_memory, 'proxy_memory')
        self.loss_agnostic = self._build_component('loss_agnostic',
                                                   loss_agnostic)
        self.loss_cross = self._build_component('loss_cross', loss_cross)
        self.loss_h_ins = self._build_component('loss_h_ins', loss_h_ins)
        self.loss_s_ins = self._build_component('loss_s_ins', loss_s_ins)
        if len(view_order) != 3:
            raise ValueError('view_order must give (strong1, weak, strong2)')
        self.view_order = tuple(view_order)
        self.student_strong2 = student_strong2
        self.momentum_strong1 = momentum_strong1

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

        # raw post-BN student features of strong1 (with gradient)
        feats = self.student_forward(inputs[i_s1])
        if self.student_strong2:
            with torch.no_grad():  # official: only moves the BN statistics
                self.student_forward(inputs[i_s2])
        keys = weak = None
        if self.momentum_strong1:
            self.momentum_forward(inputs[i_s1])  # official: BN stats only
        if self.loss_h_ins is not None or self.loss_s_ins is not None:
            keys = self.momentum_forward(inputs[i_s2])
        if self.loss_s_ins is not None:
            weak = self.momentum_forward(inputs[i_weak])

        mem = self.proxy_memory
        cam_proxies = mem.camera_proxies(self.get_camids(data_samples))
        world_size = get_world_size()
        gather = self.gather_keys and world_size > 1

        def gathered(x):
            if x is None or not gather:
                return x
            return all_gather_cat(x.contiguous())

        all_keys, all_weak = gathered(keys), gathered(weak)
        all_targets = gathered(targets)
        all_cams = gathered(cam_proxies.query_cams)

        losses = dict()
        if self.loss_agnostic is not None:
            losses['loss_agnostic'] = self.loss_agnostic(
                feats, mem.centroids, targets)
        if self.loss_cross is not None:
            losses['loss_cross'] = self.loss_cross(
                feats,
                targets,
                cam_proxies,
                batch_cam_index=all_cams,
                scale=float(world_size) if gather else 1.0)
        if self.loss_h_ins is not None:
            losses['loss_h_ins'] = self.loss_h_ins(feats, all_keys, targets,
                                                   all_targets)
        if self.loss_s_ins is not None:
            losses['loss_s_ins'] = self.loss_s_ins(feats, all_keys, weak,
                                                   all_weak)
        return losses
