# Copyright (c) mmreid_usl contributors. All rights reserved.
"""GDS: global distance-distributions separation (Jin et al., ECCV 2020)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.deprecation import UNSET, renamed_argument
from mmreid_usl.utils.validation import check_choice

GDS_DISTANCES = ('cosine', 'euclidean')
FORMS = ('softplus', 'margin')
HARD_MODES = ('tails', 'beyond_mean')


def unit_pair_distance(feats: Tensor, metric: str = 'cosine') -> Tensor:
    r"""``(B, B)`` distances in ``[0, 1]`` of the L2-normalised rows.

    - ``'cosine'``: :math:`d = (1 - \hat x_i\cdot\hat x_j)/2 =
      \|\hat x_i - \hat x_j\|^2 / 4`;
    - ``'euclidean'``: :math:`d = \|\hat x_i - \hat x_j\|/2` (the square root
      is taken of a value clamped at 1e-12, so its gradient stays finite).
    """
    if metric not in GDS_DISTANCES:
        raise ValueError(
            f'distance must be one of {GDS_DISTANCES}, got {metric!r}')
    # half precision is upcast; float32 / float64 are kept
    x = F.normalize(
        feats.float() if feats.element_size() < 4 else feats, dim=1)
    cos = x.mm(x.t()).clamp(-1, 1)
    if metric == 'cosine':
        return (1 - cos) / 2
    return (2 - 2 * cos).clamp(min=1e-12).sqrt() / 2


def _global_sum(local: Tensor) -> Tensor:
    """Sum of ``local`` over all ranks, with the gradient of THIS rank's
    share scaled by the world size.

    Every rank computes the same loss value from the same global sums. DDP
    averages parameter gradients over the ``W`` ranks, so scaling each
    rank's own share by ``W`` makes the averaged gradient equal to the
    gradient of the loss with respect to all ranks' distances, i.e. what one
    process with the whole batch computes. On one process: ``local``.
    """
    world_size = dist.get_world_size()
    if world_size == 1:
        return local
    total = local.detach().clone()
    dist.all_reduce(total, op='sum')
    return total + world_size * (local - local.detach())


@MODELS.register_module()
class GDSLoss(nn.Module):
    r"""Global distance-distributions separation loss (GDS, GDS-H).

    Jin et al., "Global Distance-distributions Separation for Unsupervised
    Person Re-identification", ECCV 2020 (https://arxiv.org/abs/2006.00752;
    no official code was released). Facts and the reconstruction:
    ``docs/algorithms/gds.md``.

    **Certain (paper abstract and supplement).** In each mini-batch the
    distances of all positive pairs (same (pseudo-)identity) and of all
    negative pairs are taken as samples of two global Gaussians, Pos-distr
    :math:`N(\mu^+, \sigma^{+2})` and Neg-distr :math:`N(\mu^-,
    \sigma^{-2})`, whose statistics follow the moving average (``old_weight``) of the
    supplement's Eq. 1-3: for the M batch distances :math:`d_j` of one kind,

    .. math::
        \mu \leftarrow \beta\mu + (1-\beta)\frac{1}{M}\sum_j d_j, \qquad
        \sigma^2 \leftarrow \beta\sigma^2
            + (1-\beta)\frac{1}{M}\sum_j (d_j - \mu_{\text{old}})^2,

    the variance taken around the (previous) global mean, as Eq. 3
    approximates :math:`\mu_C \approx \mu_A`. The statistics start at mean
    0.5 and variance 1/6 (so the distances lie in ``[0, 1]``). The loss is
    computed "on the fly" from the updated statistics, so the gradient flows
    through the current batch's share :math:`1-\beta`; the stored statistics
    are detached. ``L_GDS`` pushes the means apart and makes both
    distributions sharp with :math:`\lambda_\sigma = 1`; the
    distribution-based hard mining ``L_H`` is weighted by
    :math:`\lambda_h = 0.5`.

    **Reconstructed (the main paper's equations were not available).** The
    forms below, each switchable so that the paper's can be dropped in:

    - ``L_GDS = f(μ⁺ - μ⁻) + λ_σ (σ⁺² + σ⁻²)`` with ``f = softplus``
      (``form='softplus'``, default; the authors use softplus in SNR) or
      ``f(x) = max(0, x + margin)`` (``form='margin'``);
    - ``L_H``, ``hard_mining='tails'`` (default): the hard tails the
      supplement tracks move apart, ``L_H = f((μ⁺ + kσ⁺) - (μ⁻ - kσ⁻))``
      with ``k = tail_k = 3``; ``hard_mining='beyond_mean'``: the batch
      pairs beyond the opposite global mean (positives farther than
      :math:`\mu^-`, negatives closer than :math:`\mu^+`) are pulled back,
      ``L_H = mean_{H⁺} f(d - μ⁻) + mean_{H⁻} f(μ⁺ - d)`` (a pair is hard when
      its argument is above ``-margin``; 0 when none is);
    - the distance: ``(1 - cos)/2`` of the L2-normalised features
      (``distance='cosine'``) or half their Euclidean distance
      (``'euclidean'``), both in ``[0, 1]`` as the initial statistics imply;
    - all pairs of the batch (not only batch-hard ones), each unordered pair
      once;
    - :math:`\beta` (``old_weight``, the weight of the OLD statistics, as
      ``ClusterMemory.old_weight``), not given in the supplement: 0.9.
      ``old_weight=None`` uses the supplement's own :math:`\beta = N/(N+M)`
      with :math:`N` the number of pairs seen before the batch (its toy
      game): the mean is then the exact mean of every distance seen (Eq. 1)
      and the variance follows Eq. 3.

    **Distributed.** The batch's sums (pair counts, sums of distances, sums
    of squared deviations) are all-reduced across ranks before the update,
    so the statistics are identical on every rank; each rank's own share
    keeps its gradient, scaled so that DDP's gradient averaging yields the
    gradient of the one global loss (see :func:`_global_sum`). Pairs are
    formed within each rank's batch (whole identities per rank).

    The statistics are buffers: they are in the checkpoint and restored on
    resume.

    Args:
        old_weight (float, optional): :math:`\beta` in ``[0, 1)``, the
            weight of the OLD statistics in an update (the project's
            convention for memories and statistics; ``momentum`` of the
            EMA encoders is the weight of the NEW parameters); None for the
            cumulative :math:`N/(N+M)`. Defaults to 0.9.
        lambda_sigma (float): :math:`\lambda_\sigma`. Defaults to 1.0.
        lambda_h (float): :math:`\lambda_h`, the weight of ``L_H``; 0 turns
            the hard mining off (plain GDS). Defaults to 0.5.
        form (str): ``'softplus'`` or ``'margin'`` for both terms.
            Defaults to ``'softplus'``.
        margin (float): The margin of ``form='margin'``. Defaults to 0.
        hard_mining (str): ``'tails'`` or ``'beyond_mean'``. Defaults to
            ``'tails'``.
        tail_k (float): :math:`k` of the tails. Defaults to 3.
        distance (str): ``'cosine'`` or ``'euclidean'``. Defaults to
            ``'cosine'``.
        init_mean (float): Initial means. Defaults to 0.5.
        init_var (float): Initial variances. Defaults to 1/6.
        loss_weight (float): Weight of ``L_GDS`` (and of ``λ_h L_H``)
            against the baseline losses. Defaults to 1.0.
        check_sync (bool): After every update, all-gather the statistics
            and raise if two ranks differ (a debugging check; one extra
            collective per iteration). Defaults to False.
        momentum (float, optional): Deprecated name of ``old_weight`` (same
            value and meaning: the OLD statistics' weight); a
            :class:`~mmreid_usl.utils.deprecation.DeprecatedNameWarning`.
    """

    def __init__(self,
                 old_weight: Optional[float] = 0.9,
                 lambda_sigma: float = 1.0,
                 lambda_h: float = 0.5,
                 form: str = 'softplus',
                 margin: float = 0.0,
                 hard_mining: str = 'tails',
                 tail_k: float = 3.0,
                 distance: str = 'cosine',
                 init_mean: float = 0.5,
                 init_var: float = 1.0 / 6,
                 loss_weight: float = 1.0,
                 check_sync: bool = False,
                 momentum: Optional[float] = UNSET) -> None:
        super().__init__()
        old_weight = renamed_argument('GDSLoss', 'momentum', 'old_weight',
                                      momentum, old_weight, 0.9)
        if old_weight is not None and not 0 <= old_weight < 1:
            raise ValueError(f'old_weight (beta) must be in [0, 1) or None, '
                             f'got {old_weight}')
        check_choice('form', form, FORMS)
        check_choice('hard_mining', hard_mining, HARD_MODES)
        check_choice('distance', distance, GDS_DISTANCES)
        if lambda_sigma < 0 or lambda_h < 0 or init_var < 0:
            raise ValueError('lambda_sigma, lambda_h and init_var must be '
                             '>= 0')
        self.old_weight = None if old_weight is None else float(old_weight)
        self.lambda_sigma = float(lambda_sigma)
        self.lambda_h = float(lambda_h)
        self.form = form
        self.margin = float(margin)
        self.hard_mining = hard_mining
        self.tail_k = float(tail_k)
        self.distance = distance
        self.loss_weight = float(loss_weight)
        self.check_sync = check_sync
        self.register_buffer('mean_pos', torch.tensor(float(init_mean)))
        self.register_buffer('var_pos', torch.tensor(float(init_var)))
        self.register_buffer('mean_neg', torch.tensor(float(init_mean)))
        self.register_buffer('var_neg', torch.tensor(float(init_var)))
        self.register_buffer('num_updates', torch.tensor(0,
                                                         dtype=torch.long))
        # pairs seen so far (N of beta = N / (N + M), old_weight=None)
        self.register_buffer('count_pos',
                             torch.tensor(0., dtype=torch.float64))
        self.register_buffer('count_neg',
                             torch.tensor(0., dtype=torch.float64))

    # ------------------------------------------------------------------
    def _f(self, x: Tensor) -> Tensor:
        """``softplus(x)`` or ``max(0, x + margin)``."""
        if self.form == 'softplus':
            return F.softplus(x)
        return F.relu(x + self.margin)

    def _update(self, d: Tensor, mean: Tensor, var: Tensor,
                seen: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Momentum update of one distribution from batch distances ``d``
        (``seen``: the number of pairs before this batch).

        Returns:
            tuple: The new mean and variance (with the gradient of the
            batch's share) and the global number of pairs.
        """
        stats = torch.stack([
            d.new_tensor(float(d.numel())),
            d.sum(),
            ((d - mean.detach())**2).sum()
        ])
        count, total, sq = _global_sum(stats)
        if float(count.detach()) == 0:
            return mean.detach().clone(), var.detach().clone(), count
        if self.old_weight is None:
            b = float(seen) / (float(seen) + float(count.detach()))
        else:
            b = self.old_weight
        new_mean = b * mean.detach() + (1 - b) * total / count
        new_var = b * var.detach() + (1 - b) * sq / count
        return new_mean, new_var, count

    def _hard_beyond_mean(self, d_pos: Tensor, d_neg: Tensor, mean_pos: Tensor,
                          mean_neg: Tensor) -> Tensor:
        """``mean_{H⁺} f(d - μ⁻) + mean_{H⁻} f(μ⁺ - d)``, global means."""
        terms = []
        thresh = -self.margin if self.form == 'margin' else 0.0
        for x in (d_pos - mean_neg, mean_pos - d_neg):
            hard = x.detach() > thresh
            stats = torch.stack(
                [x.new_tensor(float(hard.sum())), self._f(x[hard]).sum()])
            count, total = _global_sum(stats)
            terms.append(total / count.clamp(min=1))
        return terms[0] + terms[1]

    def _check_sync(self) -> None:
        if dist.get_world_size() == 1:
            return
        mine = torch.stack([
            self.mean_pos, self.var_pos, self.mean_neg, self.var_neg,
            self.num_updates.to(self.mean_pos.dtype)
        ])
        for rank, other in enumerate(dist.all_gather(mine)):
            if not torch.equal(other, mine):
                raise RuntimeError(
                    f'GDSLoss: the global statistics of rank {rank} '
                    f'{other.tolist()} differ from rank {dist.get_rank()}\'s '
                    f'{mine.tolist()}')

    # ------------------------------------------------------------------
    def forward(self, feats: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """Update the global statistics (training mode) and compute the loss.

        Args:
            feats (Tensor): ``(B, D)`` features (normalised inside).
            targets (Tensor): ``(B,)`` (pseudo-)labels.

        Returns:
            dict: ``loss_gds`` (``L_GDS``), ``loss_gds_h`` (``λ_h L_H``, when
            ``lambda_h > 0``), and the detached statistics ``gds_mean_pos``,
            ``gds_std_pos``, ``gds_mean_neg``, ``gds_std_neg`` for the log.
        """
        if feats.dim() != 2 or targets.shape != feats.shape[:1]:
            raise ValueError('GDSLoss needs (B, D) features and (B,) targets,'
                             f' got {tuple(feats.shape)} and '
                             f'{tuple(targets.shape)}')
        with torch.autocast(device_type=feats.device.type, enabled=False):
            dmat = unit_pair_distance(feats, self.distance)
            n = len(feats)
            iu = torch.triu_indices(n, n, offset=1, device=feats.device)
            d = dmat[iu[0], iu[1]]
            same = targets[iu[0]] == targets[iu[1]]
            d_pos, d_neg = d[same], d[~same]
            mean_pos, var_pos, n_pos = self._update(d_pos, self.mean_pos,
                                                    self.var_pos,
                                                    self.count_pos)
            mean_neg, var_neg, n_neg = self._update(d_neg, self.mean_neg,
                                                    self.var_neg,
                                                    self.count_neg)
            if self.training:
                self.count_pos += float(n_pos.detach())
                self.count_neg += float(n_neg.detach())
                self.mean_pos.copy_(mean_pos.detach())
                self.var_pos.copy_(var_pos.detach())
                self.mean_neg.copy_(mean_neg.detach())
                self.var_neg.copy_(var_neg.detach())
                self.num_updates += 1
                if self.check_sync:
                    self._check_sync()
            # keep the graph to the features even if a kind had no pair
            zero = feats.sum() * 0.0
            loss_gds = self._f(mean_pos - mean_neg) + self.lambda_sigma * (
                var_pos + var_neg) + zero
            out = dict(loss_gds=self.loss_weight * loss_gds)
            if self.lambda_h > 0:
                if self.hard_mining == 'tails':
                    std_pos = var_pos.clamp(min=1e-12).sqrt()
                    std_neg = var_neg.clamp(min=1e-12).sqrt()
                    loss_h = self._f((mean_pos + self.tail_k * std_pos) -
                                     (mean_neg - self.tail_k * std_neg))
                else:
                    loss_h = self._hard_beyond_mean(d_pos, d_neg, mean_pos,
                                                    mean_neg)
                out['loss_gds_h'] = self.loss_weight * self.lambda_h * (
                    loss_h + zero)
        out.update(
            gds_mean_pos=mean_pos.detach(),
            gds_std_pos=var_pos.detach().clamp(min=0).sqrt(),
            gds_mean_neg=mean_neg.detach(),
            gds_std_neg=var_neg.detach().clamp(min=0).sqrt())
        return out

    def extra_repr(self) -> str:
        return (f'old_weight={self.old_weight}, '
                f'lambda_sigma={self.lambda_sigma},'
                f' lambda_h={self.lambda_h}, form={self.form!r}, '
                f'hard_mining={self.hard_mining!r}, '
                f'distance={self.distance!r}')
