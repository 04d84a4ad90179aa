# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE's cross-camera proxy loss (paper Eq. 7, code ``loss_cam``)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import CameraProxies
from mmreid_usl.utils.validation import check_choice
from ..utils.precision import at_least_fp32


@MODELS.register_module()
class CrossCameraProxyLoss(nn.Module):
    r"""Contrast online features with camera proxies and hard negatives.

    ICE (Chen et al., ICCV 2021, Eq. 7-8, https://arxiv.org/abs/2103.16364;
    official code https://github.com/chenhao2345/ICE, ``camera_loss``), the
    CAP inter-camera loss (Wang et al., AAAI 2021,
    https://arxiv.org/abs/2012.10674); paper-vs-code facts in
    ``docs/algorithms/ice.md#cross-camera-proxy-loss``. With
    :math:`\hat f_i` the L2-normalised online feature, :math:`\tilde P_j`
    the (normalised, see below) camera proxies,
    :math:`s_{ij} = \hat f_i\cdot\tilde P_j/\tau_c`,
    :math:`\mathcal{P}_i` the positive proxies and :math:`\mathcal{N}_i` the
    ``num_negatives`` non-positive proxies with the highest (detached)
    similarity :math:`s_{ij}`.

    Proxy normalisation. The bank :math:`P \in \mathbb{R}^{M\times D}` holds
    the M camera proxies as rows.

    * ``proxy_norm='official'`` (default): the official code normalises the
      TRANSPOSED bank, ``F.normalize(P.t())``, i.e. every feature dimension
      :math:`d` across the M proxies:
      :math:`\tilde P_{jd} = P_{jd} / \sqrt{\sum_{m=1}^{M} P_{md}^2}`.
      For row-normalised proxies spread over all dimensions each column norm
      is about :math:`\sqrt{M/D}`, so the logits grow by about
      :math:`\sqrt{D/M}` (an effective temperature that depends on M), and
      the hard negatives are ranked on these rescaled similarities.
    * ``proxy_norm='cosine'``: every proxy is L2-normalised on its own,
      :math:`\tilde P_j = P_j/\lVert P_j\rVert` (cosine similarity, the
      form written in the paper).

    ``variant='code'`` (default, official code): positives are ALL the
    proxies of the sample's cluster (own camera included), one softmax over
    :math:`\mathcal{P}_i \cup \mathcal{N}_i` with a uniform target, summed
    over the cameras in the batch of the per-camera mean:

    .. math::
        \ell_i = -\frac{1}{|\mathcal{P}_i|}\sum_{j\in\mathcal{P}_i}
            \log\frac{e^{s_{ij}}}{\sum_{k\in\mathcal{P}_i\cup\mathcal{N}_i}
            e^{s_{ik}}}, \qquad
        \mathcal{L} = w\sum_{c}\frac{1}{|B_c|}\sum_{i\in B_c}\ell_i .

    ``variant='paper'`` (Eq. 7): positives are the proxies of the sample's
    cluster from OTHER cameras, each with its own denominator, mean over the
    batch samples that have at least one such positive:

    .. math::
        \ell_i = -\frac{1}{|\mathcal{P}_i|}\sum_{j\in\mathcal{P}_i}
            \log\frac{e^{s_{ij}}}{e^{s_{ij}} + \sum_{k\in\mathcal{N}_i}
            e^{s_{ik}}}, \qquad \mathcal{L} = w\,\mathrm{mean}_i\,\ell_i .

    Banks with few proxies. The official code picks the negatives as the
    top ``num_negatives`` of ALL the similarities after masking the
    positives to a constant (-10000) below every similarity; when fewer than
    ``num_negatives`` proxies of other clusters exist (a bank of fewer than
    ``num_negatives + |P_i|`` proxies: small datasets, never Market-size
    runs) the selection reaches into the masked positives, which then enter
    the softmax denominator a second time.
    ``pad_negatives_with_positives=True`` reproduces that (the positives
    taken are those a stable ascending sort puts last: the highest proxy
    indices; with a bank of at most ``num_negatives`` proxies, every
    positive); False (default) only takes proxies of other clusters.

    The proxies are frozen (no gradient). Maths in fp32 (fp64 for a
    float64 model, :func:`at_least_fp32`).

    Args:
        temperature (float): :math:`\tau_c`. Defaults to 0.07.
        num_negatives (int): :math:`N_{neg}` hard negative proxies.
            Defaults to 50.
        variant (str): ``'code'`` or ``'paper'``. Defaults to ``'code'``.
        loss_weight (float): :math:`w` (0.5 in Eq. 8). Defaults to 0.5.
        proxy_norm (str): ``'official'`` (normalise each feature dimension
            of the bank across all proxies, as the official code) or
            ``'cosine'`` (normalise each proxy). Defaults to ``'official'``.
        pad_negatives_with_positives (bool): On banks with fewer than
            ``num_negatives`` proxies of other clusters, fill the negatives
            with positives as the official code does (see above). Defaults
            to False.
    """

    def __init__(self,
                 temperature: float = 0.07,
                 num_negatives: int = 50,
                 variant: str = 'code',
                 loss_weight: float = 0.5,
                 proxy_norm: str = 'official',
                 pad_negatives_with_positives: bool = False) -> None:
        super().__init__()
        check_choice('variant', variant, ('code', 'paper'))
        check_choice('proxy_norm', proxy_norm, ('official', 'cosine'))
        self.proxy_norm = proxy_norm
        self.pad_negatives_with_positives = pad_negatives_with_positives
        self.temperature = temperature
        self.num_negatives = num_negatives
        self.variant = variant
        self.loss_weight = loss_weight

    def forward(self,
                feats: Tensor,
                targets: Tensor,
                camera_proxies: CameraProxies,
                batch_cam_index: Optional[Tensor] = None,
                scale: float = 1.0) -> Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` online features (normalised here).
            targets (Tensor): ``(B,)`` pseudo-labels of the batch.
            camera_proxies (CameraProxies): What the memory computes
                (``CameraProxyMemory.camera_proxies(camids)``): the ``(M,
                D)`` proxies (the whole bank: with ``proxy_norm='official'``
                every logit depends on all M rows), the cluster of each, the
                camera index of each (required for ``variant='paper'``) and
                the ``(B,)`` camera index of each sample in the same map.
            batch_cam_index (Tensor, optional): Camera indices of the whole
                (all-gathered) batch; the per-camera sizes :math:`|B_c|` of
                ``variant='code'`` are counted there. Defaults to
                ``cam_index``.
            scale (float): Multiplier of the ``'code'`` loss (the world size
                under DDP, whose gradient averaging over ranks then yields
                the global per-camera sum). Defaults to 1.

        Returns:
            Tensor: Scalar loss.
        """
        proxies, proxy_labels, proxy_cams, cam_index = camera_proxies
        with torch.autocast(device_type=feats.device.type, enabled=False):
            feats = F.normalize(at_least_fp32(feats), dim=1)
            proxies = proxies.detach().to(feats.dtype)
            if proxies.dim() != 2 or proxies.shape[1] != feats.shape[1]:
                raise ValueError(
                    f'proxies must be (M, {feats.shape[1]}), got '
                    f'{tuple(proxies.shape)}')
            # 'official': columns (feature dimensions) over the M proxies,
            # i.e. F.normalize(P.t(), dim=1).t(); 'cosine': rows.
            proxies = F.normalize(
                proxies, dim=0 if self.proxy_norm == 'official' else 1)
            sims = feats @ proxies.t() / self.temperature
            pos = proxy_labels.unsqueeze(0) == targets.unsqueeze(1)  # (B, M)
            if self.variant == 'paper':
                if proxy_cams is None:
                    raise ValueError("variant='paper' needs proxy_cams")
                pos_used = pos & (
                    proxy_cams.unsqueeze(0) != cam_index.unsqueeze(1))
            else:
                pos_used = pos

            # Hard negatives: the most similar proxies of other clusters,
            # chosen on the detached similarity.
            num_neg = min(self.num_negatives, sims.shape[1])
            if self.pad_negatives_with_positives:
                # the official ranking: positives at a floor below every
                # similarity, ordered by index as a stable sort leaves them,
                # so a short bank yields positives as "negatives" too
                num_proxies = sims.shape[1]
                order = torch.arange(
                    num_proxies, device=sims.device, dtype=sims.dtype)
                floor = sims.detach().min() - num_proxies - 1.
                neg_scores = torch.where(pos, floor + order, sims.detach())
                _, top_idx = neg_scores.topk(num_neg, dim=1)
                neg = torch.zeros_like(pos).scatter_(
                    1, top_idx, torch.ones_like(top_idx, dtype=torch.bool))
            else:
                neg_scores = sims.detach().masked_fill(pos, float('-inf'))
                top_val, top_idx = neg_scores.topk(num_neg, dim=1)
                neg = torch.zeros_like(pos).scatter_(1, top_idx,
                                                     torch.isfinite(top_val))

            num_pos = pos_used.sum(1)
            valid = num_pos > 0
            if self.variant == 'code' and self.pad_negatives_with_positives:
                # denominator: the positives, then the negatives (a positive
                # taken as a negative counts twice, as in the official code)
                lse = torch.logsumexp(
                    torch.cat([
                        sims.masked_fill(~pos_used, float('-inf')),
                        sims.masked_fill(~neg, float('-inf'))
                    ], dim=1),
                    dim=1,
                    keepdim=True)
                log_prob = (sims - lse).masked_fill(~pos_used, 0.)
            elif self.variant == 'code':
                logits = sims.masked_fill(~(pos_used | neg), float('-inf'))
                log_prob = F.log_softmax(logits, dim=1)
                log_prob = log_prob.masked_fill(~pos_used, 0.)
            else:
                neg_lse = torch.logsumexp(
                    sims.masked_fill(~neg, float('-inf')), dim=1, keepdim=True)
                # log(e^s / (e^s + sum_neg e^s_k)) for every positive j.
                log_prob = sims - torch.logaddexp(sims, neg_lse)
                log_prob = log_prob.masked_fill(~pos_used, 0.)
            per_sample = -log_prob.sum(1) / num_pos.clamp(min=1)

            if not valid.any():
                return feats.sum() * 0.
            if self.variant == 'code':
                # Sum over cameras of the per-camera mean.
                if batch_cam_index is None:
                    batch_cam_index = cam_index[valid]
                sizes = (cam_index[valid].unsqueeze(1) ==
                         batch_cam_index.unsqueeze(0)).sum(1).float()
                loss = scale * (per_sample[valid] / sizes).sum()
            else:
                loss = per_sample[valid].mean()
        return self.loss_weight * loss
