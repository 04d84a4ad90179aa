# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DCMIP: discrepant and multi-instance proxies (Zou et al., ICCV 2023)."""
from dataclasses import replace
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from mmreid_usl.utils.deprecation import renamed_attribute, renamed_kwargs
from .base_momentum import BaseMomentumUSLReID

OptCfg = Optional[Union[dict, nn.Module]]

#: When the momentum encoder is copied from the student at a re-labelling.
REINIT_MODES = ('every', 'until_mip', 'never')
#: Which encoder's batch features replace the instance proxies.
MIP_UPDATE_ENCODERS = ('momentum', 'student')


@MODELS.register_module()
class DCMIP(BaseMomentumUSLReID):
    r"""DCMIP for unsupervised person re-identification.

    Zou et al., "Discrepant and Multi-Instance Proxies for Unsupervised
    Person Re-Identification", ICCV 2023
    (https://openaccess.thecvf.com/content/ICCV2023/html/Zou_Discrepant_and_Multi-Instance_Proxies_for_Unsupervised_Person_Re-Identification_ICCV_2023_paper.html).
    There is no official code; https://github.com/Trangle12/DCMIP is an
    unofficial re-implementation. What comes from the paper, from that code
    and what is ours: ``docs/algorithms/dcmip.md``.

    Built on Cluster Contrast. At every re-labelling (clustering of the
    student's features, ``cluster_encoder='student'``, Algorithm 1):

    1. the discrepant cluster proxies (:class:`DiscrepantClusterMemory`,
       :math:`M = 2` per cluster) start from the cluster centroids;
    2. from the (0-based) epoch ``ins_start_epoch`` :math:`= E_{ins}` on
       (the paper's epochs :math:`> E_{ins}`, 1-based), the momentum encoder
       is re-initialised from the student (``momentum_reinit``) and the
       multi-instance proxies (:class:`InstanceProxyMemory`, :math:`K = 16`
       per cluster) are filled with its features.

    Every iteration, with :math:`q` the L2-normalised student features and
    :math:`k` the momentum encoder's (ShuffleBN unless
    ``momentum_shuffle_bn=False``, no gradient):

    .. math::
        \mathcal{L} = \begin{cases}
            \mathcal{L}_{DCP}(q) & \text{epoch} < E_{ins} \\
            \lambda\,\mathcal{L}_{DCP}(q) + (1-\lambda)\,
            \mathcal{L}_{MIP}(q) & \text{otherwise}
        \end{cases}

    (:class:`DiscrepantClusterNCELoss`, :class:`MultiInstanceProxyLoss`;
    :math:`\lambda` = ``dcp_weight`` = 0.5, the second weight ``mip_weight``
    defaults to :math:`1-\lambda`; the unofficial code uses 1 and 1). Then
    the cluster proxies are updated with :math:`q`, the instance proxies of
    the batch's clusters are replaced by :math:`k`, and after the optimiser
    step the ``MomentumUpdateHook`` moves the momentum encoder
    (:math:`\alpha = 0.999`, ``momentum = 1 - alpha = 0.001`` in mmengine's
    convention). The momentum encoder is deployed
    (``test_cfg.encoder='momentum'``).

    The epoch of the last labelling is kept in the ``label_epoch`` buffer
    (and the first epoch the instance proxies were filled in
    ``mip_start``), so a resumed run takes the same branch.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder` (ResNet-50, GeM,
            BNNeck).
        dcp_memory (dict | nn.Module): :class:`DiscrepantClusterMemory`
            config (``feat_dim`` defaults to the encoder's).
        instance_memory (dict | nn.Module, optional):
            :class:`InstanceProxyMemory` config; None switches the instance
            proxies off (DCMIP without MIP = Cluster Contrast + DCP).
        loss_dcp (dict | nn.Module): :class:`DiscrepantClusterNCELoss`.
        loss_mip (dict | nn.Module, optional): :class:`MultiInstanceProxyLoss`.
        ins_start_epoch (int, optional): :math:`E_{ins}`, the 0-based epoch
            from which the instance proxies are used (20: the 21st epoch, as
            the paper). None: never. Takes effect at the first re-labelling
            at or after it.
        dcp_weight (float): :math:`\lambda`, weight of
            :math:`\mathcal{L}_{DCP}` once the instance proxies are on.
            Defaults to 0.5.
        mip_weight (float, optional): Weight of :math:`\mathcal{L}_{MIP}`.
            None: :math:`1 - \lambda` (paper). The unofficial code: 1.0 with
            ``dcp_weight=1.0``.
        momentum_reinit (str): When the momentum encoder is copied from the
            student at a re-labelling: ``'every'`` (default; the paper
            re-initialises it at every epoch after :math:`E_{ins}`; before,
            it is unused by training and copying it keeps its evaluation
            meaningful), ``'until_mip'`` (at every re-labelling up to and
            including the first with instance proxies, then a continuous
            EMA: the unofficial code, whose stage 2 starts its EMA from the
            stage-1 model) or ``'never'``.
        mip_update_encoder (str): Encoder whose batch features replace the
            instance proxies: ``'momentum'`` (paper) or ``'student'`` (the
            unofficial code's bug, which writes the online features; also
            the "without momentum encoder" ablation together with
            ``instance_memory.encoder='student'``). With ``'student'``
            the momentum forward of the batch still runs, as in the
            unofficial code: its train-mode BatchNorm moves the momentum
            encoder's own running statistics (``momentum_buffer_mode=
            'own'``), which its feature bank, its evaluation and deployment
            use. Only with ``momentum_buffer_mode='copy'`` (the statistics
            are the student's after every EMA step) does the forward change
            nothing, and it is skipped (:attr:`momentum_forward_needed`).
        **kwargs: ``momentum`` (0.001), ``momentum_buffer_mode`` (``'own'``),
            ``momentum_bn_group_size``, ``momentum_shuffle_bn`` (True),
            ``sync_momentum_buffers``,
            ``cluster_encoder`` (``'student'``), ``bn_group_size``,
            ``labels_from``, ``data_preprocessor``, ``test_cfg``
            (``encoder='momentum'``), ``init_cfg`` of
            :class:`BaseMomentumUSLReID`.

    ``mip_update_source`` is the deprecated name of ``mip_update_encoder``
    (a ``DeprecatedNameWarning``, same behaviour).
    """

    mip_update_source = renamed_attribute('mip_update_source',
                                          'mip_update_encoder')

    @renamed_kwargs(mip_update_source='mip_update_encoder',
                    cluster_feat_source='cluster_encoder')
    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 dcp_memory: OptCfg = dict(type='DiscrepantClusterMemory'),
                 instance_memory: OptCfg = dict(type='InstanceProxyMemory'),
                 loss_dcp: OptCfg = dict(type='DiscrepantClusterNCELoss'),
                 loss_mip: OptCfg = dict(type='MultiInstanceProxyLoss'),
                 ins_start_epoch: Optional[int] = 20,
                 dcp_weight: float = 0.5,
                 mip_weight: Optional[float] = None,
                 momentum_reinit: str = 'every',
                 mip_update_encoder: str = 'momentum',
                 cluster_encoder: str = 'student',
                 **kwargs) -> None:
        super().__init__(
            encoder=encoder, cluster_encoder=cluster_encoder, **kwargs)
        if momentum_reinit not in REINIT_MODES:
            raise ValueError(f'momentum_reinit must be one of {REINIT_MODES}'
                             f', got {momentum_reinit!r}')
        if mip_update_encoder not in MIP_UPDATE_ENCODERS:
            raise ValueError('mip_update_encoder must be one of '
                             f'{MIP_UPDATE_ENCODERS}, got '
                             f'{mip_update_encoder!r}')
        if ins_start_epoch is not None and (not isinstance(
                ins_start_epoch, int) or ins_start_epoch < 0):
            raise ValueError('ins_start_epoch must be None or an int >= 0, '
                             f'got {ins_start_epoch!r}')
        if dcp_memory is None or loss_dcp is None:
            raise ValueError('DCMIP needs dcp_memory and loss_dcp (one '
                             "update mode, e.g. ('hard', ), is Cluster "
                             'Contrast).')
        if (instance_memory is None) != (loss_mip is None):
            raise ValueError('instance_memory and loss_mip are switched off '
                             'together (both None) or both given.')
        self.dcp_memory = self._build_memory(dcp_memory, 'dcp_memory')
        self.instance_memory = self._build_memory(instance_memory,
                                                  'instance_memory')
        self.loss_dcp = self._build_component('loss_dcp', loss_dcp)
        self.loss_mip = self._build_component('loss_mip', loss_mip)
        self.ins_start_epoch = ins_start_epoch
        self.dcp_weight = dcp_weight
        self.mip_weight = 1.0 - dcp_weight if mip_weight is None \
            else mip_weight
        self.momentum_reinit = momentum_reinit
        self.mip_update_encoder = mip_update_encoder
        self.register_buffer('label_epoch', torch.tensor(-1))
        self.register_buffer('mip_start', torch.tensor(-1))

    # ------------------------------------------------------------------
    # the contract
    @property
    def pseudo_label_banks(self) -> Tuple[str, ...]:
        """tuple[str]: Banks :meth:`set_pseudo_labels` reads.

        The clustered bank, the DCP's, and the one the instance proxies are
        filled from. When the next labelling copies the student into the
        momentum encoder before the instance proxies are filled
        (``momentum_reinit='every'``, or ``'until_mip'`` until the first
        labelling with instance proxies), the student's bank is exactly the
        momentum encoder's, so no momentum pass over the training set is
        needed; ``'until_mip'`` needs both once its EMA runs continuously
        (``mip_start`` set; read at every labelling, restored on resume).
        """
        banks = [self.cluster_encoder]
        encoders = [self.dcp_memory.encoder]
        mem = self.instance_memory
        if mem is not None:
            if mem.encoder == 'momentum' and \
                    self.momentum_reinit != 'never':
                encoders.append('student')
            copied = self.momentum_reinit == 'every' or (
                self.momentum_reinit == 'until_mip'
                and int(self.mip_start) < 0)
            if not (mem.encoder == 'momentum' and copied):
                encoders.append(mem.encoder)
        for name in encoders:
            name = name or self.cluster_encoder
            if name not in banks:
                banks.append(name)
        return tuple(banks)

    @property
    def mip_active(self) -> bool:
        """bool: Whether the instance proxies are on (for this epoch)."""
        return self.instance_memory is not None and \
            self.instance_memory.num_clusters > 0

    @property
    def momentum_forward_needed(self) -> bool:
        """bool: Whether a training step with instance proxies runs the
        momentum forward of the batch.

        Its keys replace the instance proxies with
        ``mip_update_encoder='momentum'``. With ``'student'`` they are
        discarded, but the train-mode forward still moves the momentum
        encoder's BatchNorm running statistics, which its bank, its
        ``momentum/...`` evaluation and deployment read, unless
        ``momentum_buffer_mode='copy'`` overwrites them with the student's
        after every EMA step: only then is the forward skipped.
        """
        return self.mip_update_encoder == 'momentum' or \
            self.momentum_encoder.buffer_mode != 'copy'

    def _mip_due(self, epoch: int) -> bool:
        return self.instance_memory is not None and \
            self.ins_start_epoch is not None and epoch >= self.ins_start_epoch

    @torch.no_grad()
    def set_pseudo_labels(self, result: PseudoLabelResult) -> None:
        """Store the labels, rebuild the proxies, switch the MIP on.

        Args:
            result (PseudoLabelResult): Identical on every rank; its
                ``epoch`` (0-based, the epoch about to be trained) decides
                whether the instance proxies are used.
        """
        epoch = int(result.epoch)
        self.store_labels(result)
        self.label_epoch.fill_(epoch)
        self.dcp_memory.reset(result)
        mip_due = self._mip_due(epoch)
        reinit = self.momentum_reinit == 'every' or (
            self.momentum_reinit == 'until_mip'
            and int(self.mip_start) < 0)
        if reinit:
            self.reinit_momentum_encoder()
        if not mip_due:
            if self.instance_memory is not None:
                self.instance_memory.clear()
            return
        if int(self.mip_start) < 0:
            self.mip_start.fill_(epoch)
        mem = self.instance_memory
        if reinit and mem.encoder == 'momentum':
            # the momentum encoder is now a copy of the student: its bank is
            # the student's (eval mode, same parameters and buffers)
            result = replace(
                result,
                features=dict(
                    result.features, momentum=result.bank('student')))
        mem.reset(result)

    # ------------------------------------------------------------------
    # training
    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """DCMIP losses of one batch, then the proxy updates.

        Returns:
            dict: ``loss_dcp`` and, once the instance proxies are on,
            ``loss_mip`` (both weighted).
        """
        if self.dcp_memory.num_clusters == 0:
            raise RuntimeError('DCMIP: the cluster proxies are empty; no '
                               'clusters were found (or set_pseudo_labels '
                               'never ran).')
        targets = self.get_targets(data_samples)
        feats = F.normalize(self.student_forward(inputs), dim=1)
        losses = dict()
        mip = self.mip_active
        dcp = self.loss_dcp(feats, self.dcp_memory.features, targets)
        losses['loss_dcp'] = self.dcp_weight * dcp if mip else dcp
        if mip:
            losses['loss_mip'] = self.mip_weight * self.loss_mip(
                feats, self.instance_memory.features, targets)
            if self.momentum_forward_needed:
                keys = F.normalize(self.momentum_forward(inputs), dim=1)
        camids = self.get_camids(data_samples)
        self.dcp_memory.update(feats, targets, camids)
        if mip:
            new = keys if self.mip_update_encoder == 'momentum' else feats
            self.instance_memory.update(new, targets, camids)
        return losses
