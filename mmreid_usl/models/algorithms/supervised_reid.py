# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Supervised ReID: ID loss + triplet (+ GDS)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import ReIDDataSample
from mmreid_usl.utils.deprecation import renamed_kwargs
from ..utils.batch_shuffle import grouped_forward
from .base import BaseUSLReID, num_bn_groups

#: The two features of one encoder forward: the global pooling output
#: (``pool5``) and the neck output ("embedding": the BNNeck feature, or
#: Theory's FC-BN-ReLU of :class:`FCBNNeck`).
FEAT_LEVELS = ('pooled', 'embedding')


def _check_level(name: str, level: str) -> str:
    if level not in FEAT_LEVELS:
        raise ValueError(f'{name} must be one of {FEAT_LEVELS}, got '
                         f'{level!r}')
    return level


def pooled_feature(encoder: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` global pooling output (``pool5``) of a :class:`ReIDEncoder`.

    Args:
        encoder (nn.Module): The encoder (``backbone``, ``pooling``).
        inputs (Tensor): ``(B, C, H, W)`` images.

    Returns:
        Tensor: The pooled features, flattened.
    """
    pooled = encoder.pooling(encoder.backbone(inputs))
    if isinstance(pooled, (tuple, list)):
        pooled = pooled[-1]
    return pooled.flatten(1)


class PooledAndEmbedding(nn.Module):
    """Both features of one encoder forward, ``[pooled, embedding]``.

    A module rather than a method so that :func:`grouped_forward` can run
    the BN groups after the first on copies of the encoder's buffers
    (``bn_running_stats='first_group'``). It owns no state: its only child
    is the encoder it is given.

    Args:
        encoder (nn.Module): The :class:`ReIDEncoder`.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, D + D')``: the pooled and the neck features, concatenated
        along dim 1."""
        pooled = pooled_feature(self.encoder, inputs)
        return torch.cat([pooled, self.encoder.neck(pooled)], dim=1)


@MODELS.register_module()
class SupervisedReID(BaseUSLReID):
    r"""ReID training with an identity classifier and triplet losses.

    The strong supervised baseline that "Theory" (Song et al.,
    "Unsupervised domain adaptive re-identification: Theory and practice",
    Pattern Recognition 2020, https://arxiv.org/abs/1807.11334; code
    https://github.com/lsongx/DomainAdaptiveReID) and GDS (Jin et al., ECCV
    2020, https://arxiv.org/abs/2006.00752, supplement Sec. 3) pre-train on
    the labelled source domain (stage 1); ``docs/algorithms/gds.md``.
    For a batch of P identities x K images:

    .. math::
        \mathcal{L} = \underbrace{\mathrm{CE}_{\epsilon}(W f^{e}, y)}_{
            \text{loss\_id}}
          + \sum_{f \in \text{triplet\_feats}}
            \underbrace{\mathcal{L}_{tri}(f, y)}_{\text{loss\_triplet\_}f}
          \;[+\; \mathcal{L}_{GDS} + \lambda_h \mathcal{L}_H]

    with :math:`\mathrm{CE}_\epsilon` the cross-entropy with label smoothing
    :math:`\epsilon = 0.1` (Szegedy et al., CVPR 2016) over a linear
    classifier of ``num_classes`` outputs (bias-free by default; with a
    bias, ``classifier_bias=True``, as Theory's) on the ``id_feat`` feature,
    after an optional dropout (``id_dropout``; Theory's stage 1: 0.1),
    :math:`\mathcal{L}_{tri}` the :class:`TripletLoss` (batch-hard by
    default) on each feature of ``triplet_feats``, and the optional
    :class:`GDSLoss` on ``gds_feat`` (GDS on supervised ReID, GDS
    supplement Table 4).

    One encoder forward gives two features: ``'pooled'`` (the global pooling
    output, Theory's ``pool5``) and ``'embedding'`` (the neck output: the
    BNNeck feature, or Theory's ``ReLU(BN(FC(pool5)))`` with
    :class:`FCBNNeck`). Inference (test, the features clustered by the
    ``PseudoLabelHook`` and its reference bank) uses ``eval_feat``; the test
    features are L2-normalised unless ``test_cfg.normalize=False`` (Theory's
    evaluation: the raw feature, ranked by the squared Euclidean distance of
    ``ReIDMetric``).

    The labels: with ``labels_from='gt'`` (default) and no labelling hook
    they are the samples' train-split ids (``gt_label``); the sampler draws
    P x K blocks of true ids (``PseudoIdentitySampler(labels_from='gt')``).
    With ``labels_from='pseudo'`` (the adaptation stage, :class:`Theory`)
    they are the pseudo-labels of the ``PseudoLabelHook``; the classifier
    cannot follow a changing number of clusters, so ``loss_id`` must then be
    None.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder`.
        num_classes (int, optional): Number of training identities (the
            classifier width); required with ``loss_id``. Must equal the
            number of train ids of the dataset (``dataset.num_pids``); a
            batch with an id ``>= num_classes`` stops with an error naming
            both.
        loss_id (dict, optional): The identity loss on the classifier's
            logits. Defaults to ``mmpretrain.LabelSmoothLoss`` with
            ``label_smooth_val=0.1, mode='original'`` (= cross-entropy with
            ``label_smoothing=0.1``). None: no classifier.
        id_feat (str): Feature the classifier reads. Defaults to
            ``'embedding'``.
        id_dropout (float): Dropout probability on the classifier's input
            (training only). Defaults to 0 (none); Theory's stage 1 uses
            0.1.
        classifier_bias (bool): Give the classifier a bias (initialised to
            0; the weight is N(0, 0.001²) either way). Defaults to False;
            Theory's classifier has one.
        loss_triplet (dict, optional): The :class:`TripletLoss`. Defaults to
            batch-hard, margin 0.3 on the Euclidean distance. None: no
            triplet loss.
        triplet_feats (Sequence[str]): Features with a triplet loss (one
            ``loss_triplet_<feat>`` each). Defaults to ``('pooled', )``.
        loss_gds (dict, optional): A :class:`GDSLoss`; None (default) turns
            GDS off.
        gds_feat (str): Feature of the GDS loss. Defaults to ``'pooled'``.
        eval_feat (str): Feature of inference. Defaults to ``'embedding'``.
        labels_from (str): ``'gt'`` (default) or ``'pseudo'``
            (``label_source`` is its deprecated name).
        **kwargs: ``cluster_encoder``, ``bn_group_size``,
            ``bn_running_stats``, ``data_preprocessor``, ``test_cfg``,
            ``init_cfg`` of :class:`BaseUSLReID` (``test_cfg.normalize``,
            default True: L2-normalise the test features).
    """

    @renamed_kwargs(label_source='labels_from')
    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 num_classes: Optional[int] = None,
                 loss_id: Optional[dict] = dict(
                     type='mmpretrain.LabelSmoothLoss',
                     label_smooth_val=0.1,
                     mode='original'),
                 id_feat: str = 'embedding',
                 id_dropout: float = 0.0,
                 classifier_bias: bool = False,
                 loss_triplet: Optional[dict] = dict(
                     type='TripletLoss', margin=0.3),
                 triplet_feats: Sequence[str] = ('pooled', ),
                 loss_gds: Optional[dict] = None,
                 gds_feat: str = 'pooled',
                 eval_feat: str = 'embedding',
                 labels_from: str = 'gt',
                 **kwargs):
        super().__init__(encoder=encoder, labels_from=labels_from, **kwargs)
        self.id_feat = _check_level('id_feat', id_feat)
        self.gds_feat = _check_level('gds_feat', gds_feat)
        self.eval_feat = _check_level('eval_feat', eval_feat)
        if isinstance(triplet_feats, str):
            triplet_feats = (triplet_feats, )
        self.triplet_feats = tuple(
            _check_level('triplet_feats', f) for f in triplet_feats)
        if len(set(self.triplet_feats)) != len(self.triplet_feats):
            raise ValueError(f'triplet_feats {self.triplet_feats} repeats a '
                             'feature.')
        self.loss_id = self._build_component('loss_id', loss_id)
        self.loss_triplet = self._build_component('loss_triplet',
                                                  loss_triplet)
        self.loss_gds = self._build_component('loss_gds', loss_gds)
        if self.loss_triplet is None:
            self.triplet_feats = ()
        if self.loss_id is None and not self.triplet_feats \
                and self.loss_gds is None:
            raise ValueError(f'{type(self).__name__} needs at least one of '
                             'loss_id, loss_triplet, loss_gds.')
        self.num_classes = num_classes
        if not 0.0 <= id_dropout < 1.0:
            raise ValueError(f'id_dropout must be in [0, 1), got {id_dropout}')
        self.id_dropout = nn.Dropout(id_dropout) if id_dropout > 0 else None
        self.classifier: Optional[nn.Linear] = None
        if self.loss_id is not None:
            if labels_from != 'gt':
                raise ValueError(
                    "loss_id needs labels_from='gt': an identity "
                    'classifier cannot follow pseudo-labels whose number '
                    'of clusters changes at every clustering; set '
                    'loss_id=None for the adaptation stage.')
            if not isinstance(num_classes, int) or isinstance(
                    num_classes, bool) or num_classes < 2:
                raise ValueError(
                    f'{type(self).__name__}: num_classes must be the number '
                    'of training identities (an int >= 2) when loss_id is '
                    f'set, got {num_classes!r}. It cannot be read from the '
                    'dataset at build time: set model.num_classes to the '
                    "train split's number of ids (dataset.num_pids).")
            in_dim = self.encoder.feat_dim if self.id_feat == 'embedding' \
                else getattr(self.encoder, 'pooled_dim',
                             self.encoder.feat_dim)
            self.classifier = nn.Linear(
                in_dim, num_classes, bias=classifier_bias)
            nn.init.normal_(self.classifier.weight, std=0.001)
            if classifier_bias:
                nn.init.zeros_(self.classifier.bias)

    # ------------------------------------------------------------------
    def _pooled(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` global pooling output of the encoder."""
        return pooled_feature(self.encoder, inputs)

    def forward_two(self,
                    inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training forward in BN groups (``bn_group_size``).

        Like :meth:`BaseUSLReID.student_forward`, the groups move the BN
        running statistics as ``bn_running_stats`` says.

        Returns:
            tuple[Tensor, Tensor]: ``(B, D)`` pooled and ``(B, D')``
            embedding features (raw, not normalised).
        """
        both = grouped_forward(PooledAndEmbedding(self.encoder), inputs,
                               num_bn_groups(len(inputs), self.bn_group_size),
                               self.bn_running_stats)
        d = both.shape[1] - self.encoder.feat_dim
        return both[:, :d], both[:, d:]

    @renamed_kwargs(source='encoder')
    def extract_feat(self,
                     inputs: torch.Tensor,
                     encoder: str = 'student') -> torch.Tensor:
        """Inference feature ``eval_feat`` of the encoder ``encoder``."""
        self.get_encoder(encoder)  # validates the name
        if self.eval_feat == 'embedding':
            return self.encoder(inputs)
        return self._pooled(inputs)

    # ------------------------------------------------------------------
    def _check_targets(self, targets: torch.Tensor) -> None:
        if self.classifier is None or targets.numel() == 0:
            return
        top = int(targets.max())
        if top >= self.num_classes or int(targets.min()) < 0:
            raise RuntimeError(
                f'{type(self).__name__}: a batch has the training id {top} '
                f'but model.num_classes={self.num_classes}. Set '
                'model.num_classes to the number of ids of the training '
                'split (dataset.num_pids).')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """ID, triplet and GDS losses of one batch.

        Returns:
            dict: ``loss_id``, ``loss_triplet_<feat>``, ``loss_gds``,
            ``loss_gds_h`` (those configured), the GDS statistics and the
            batch accuracy of the classifier (``acc_id``, percent).
        """
        targets = self.get_targets(data_samples)
        self._check_targets(targets)
        pooled, embedding = self.forward_two(inputs)
        feats = dict(pooled=pooled, embedding=embedding)
        losses: Dict[str, torch.Tensor] = {}
        if self.classifier is not None:
            id_in = feats[self.id_feat]
            if self.id_dropout is not None:
                id_in = self.id_dropout(id_in)
            logits = self.classifier(id_in)
            losses['loss_id'] = self.loss_id(logits, targets)
            losses['acc_id'] = (logits.detach().argmax(1) == targets).float(
            ).mean() * 100
        for name in self.triplet_feats:
            losses[f'loss_triplet_{name}'] = self.loss_triplet(
                feats[name], targets)
        if self.loss_gds is not None:
            losses.update(self.loss_gds(feats[self.gds_feat], targets))
        return losses
