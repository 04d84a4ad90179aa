# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The "Theory" UDA baseline's adaptation stage (the baseline of GDS)."""
from typing import Optional, Sequence, Union

import torch.nn as nn

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.deprecation import renamed_kwargs
from .supervised_reid import SupervisedReID


@MODELS.register_module()
class Theory(SupervisedReID):
    r"""Fine-tuning on clustered target images with Theory's triplets.

    Song et al., "Unsupervised domain adaptive re-identification: Theory and
    practice", Pattern Recognition 2020 (https://arxiv.org/abs/1807.11334;
    code https://github.com/lsongx/DomainAdaptiveReID), the baseline of GDS
    (Jin et al., ECCV 2020, https://arxiv.org/abs/2006.00752), whose
    constraint is added here with ``loss_gds``. Facts:
    ``docs/algorithms/gds.md``.

    Starting from a source-trained :class:`SupervisedReID` checkpoint
    (``load_from``; its classifier is dropped), the target training set is
    re-clustered every ``PseudoLabelHook.interval`` epochs (k-reciprocal
    Jaccard mixed with the distance to the source domain,
    :class:`SourceAwareJaccardDistance`, then DBSCAN with an eps computed
    once from the data, :class:`RhoDBSCANClusterer`; outliers dropped) and
    the model is fine-tuned on the clusters with

    .. math::
        \mathcal{L} = \mathcal{L}_{tri}(f^{pool5}, \hat y)
            + \mathcal{L}_{tri}(f^{emb}, \hat y)
            \;[+\; \mathcal{L}_{GDS} + \lambda_h\mathcal{L}_H],

    triplet losses with margin 0.5 on the pooled feature and on the
    embedding, in Theory's ``use_semi=True`` mining
    (``TripletLoss(mining='semi')``: every anchor with every LATER positive
    of its P x K block, against the anchor's hardest negative; the mean over
    the P·K(K-1)/2 terms) — not batch-hard, which is Theory's stage-1 loss.
    The embedding is the encoder's neck (Theory's ``ReLU(BN(FC(pool5)))``
    is :class:`FCBNNeck`, set by ``configs/_base_/models/theory_r50.py``).
    Features of inference (test, clustering, the source reference bank) are
    the pooled ones (``eval_feat='pooled'``, Theory's ``pool5``).

    This is :class:`SupervisedReID` with ``labels_from='pseudo'``, no
    identity loss and these defaults.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder`.
        loss_triplet (dict): Defaults to
            ``TripletLoss(margin=0.5, mining='semi')`` (K read from the
            batch's label runs; see :class:`TripletLoss`).
        triplet_feats (Sequence[str]): Defaults to
            ``('pooled', 'embedding')``.
        loss_gds (dict, optional): :class:`GDSLoss` (GDS / GDS-H); None is
            the Theory baseline. Defaults to None.
        gds_feat (str): Defaults to ``'pooled'``.
        eval_feat (str): Defaults to ``'pooled'``.
        labels_from (str): Defaults to ``'pseudo'`` (``label_source`` is
            its deprecated name).
        **kwargs: Other arguments of :class:`SupervisedReID` /
            :class:`BaseUSLReID`.
    """

    @renamed_kwargs(label_source='labels_from')
    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 loss_triplet: Optional[dict] = dict(
                     type='TripletLoss', margin=0.5, mining='semi'),
                 triplet_feats: Sequence[str] = ('pooled', 'embedding'),
                 loss_gds: Optional[dict] = None,
                 gds_feat: str = 'pooled',
                 eval_feat: str = 'pooled',
                 labels_from: str = 'pseudo',
                 **kwargs):
        kwargs.setdefault('loss_id', None)
        super().__init__(
            encoder=encoder,
            loss_triplet=loss_triplet,
            triplet_feats=triplet_feats,
            loss_gds=loss_gds,
            gds_feat=gds_feat,
            eval_feat=eval_feat,
            labels_from=labels_from,
            **kwargs)
