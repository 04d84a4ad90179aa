# Copyright (c) mmreid_usl contributors. All rights reserved.
"""k-reciprocal Jaccard distance mixed with the distance to a source domain."""
import math
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.search import check_backend, topk_search
from mmreid_usl.utils.validation import check_real
from .base import BaseDistance, DistanceMatrix, LabelingContext
from .jaccard import JaccardDistance
from .knn import APPROX_BACKENDS
from .theory_rerank import theory_jaccard_fp16
from .unstored_distance import UnstoredDistance

#: Features of the source term of :class:`SourceAwareJaccardDistance`.
SOURCE_FEATURES = ('raw_fp16', 'normalized')
#: How the Jaccard term is computed (see the class docstring).
JACCARD_MODES = ('sparse', 'theory_fp16')


def nearest_sqdist(query: torch.Tensor,
                   base: torch.Tensor,
                   backend: str = 'auto',
                   chunk_size: Optional[int] = None) -> np.ndarray:
    """Squared Euclidean distance of every query row to its nearest base row.

    The top-1 of :func:`mmreid_usl.utils.search.topk_search`
    (``metric='sqeuclidean'``: ``faiss.IndexFlatL2``, exact, when faiss is
    importable and ``backend != 'torch'``; otherwise a chunked torch
    ``mm``), clamped at 0.

    Args:
        query (Tensor): ``(N, D)``.
        base (Tensor): ``(M, D)``, ``M >= 1``.
        backend (str): ``'auto'``, ``'faiss'`` or ``'torch'``.
        chunk_size (int, optional): Query rows per torch chunk.

    Returns:
        np.ndarray: ``(N,)`` float64.
    """
    check_backend(backend)
    if base.shape[0] == 0:
        raise ValueError('nearest_sqdist: the base (reference) set is empty')
    if query.shape[1] != base.shape[1]:
        raise ValueError(f'nearest_sqdist: query has {query.shape[1]} dims, '
                         f'base has {base.shape[1]}')
    d2, _ = topk_search(query,
                        base,
                        1,
                        metric='sqeuclidean',
                        backend=backend,
                        chunk_size=chunk_size)
    return np.maximum(d2[:, 0].cpu().numpy().astype(np.float64), 0)


@TASK_UTILS.register_module()
class SourceAwareJaccardDistance(BaseDistance):
    r"""Jaccard distance of the target mixed with the distance to the source.

    The clustering distance of "Theory" (Song et al., "Unsupervised domain
    adaptive re-identification: Theory and practice", Pattern Recognition
    2020, https://arxiv.org/abs/1807.11334; code
    lsongx/DomainAdaptiveReID), the baseline of GDS
    (``docs/algorithms/gds.md``). With the target features :math:`t_i` and
    the source (reference) features :math:`x_m`,

    .. math::
        s_i = \frac{\tilde s_i}{\max_k \tilde s_k}, \quad
        \tilde s_i = \min_m \big(1 - e^{-\|t_i - x_m\|^2}\big)
                   = 1 - e^{-\min_m \|t_i - x_m\|^2},

        d(i, j) = (1 - \lambda)\, d_J(i, j) + \lambda\,(s_i + s_j),
        \qquad \lambda = 0.1,

    where :math:`d_J` is the k-reciprocal Jaccard distance
    (:class:`JaccardDistance`, k1 = 20, k2 = 6 in Theory). Pairs far from
    the source get larger distances, so DBSCAN with one eps is stricter
    with them. :math:`d(i, i) = 0` (a point is its own DBSCAN neighbour;
    the official dense matrix has :math:`2\lambda s_i` on its diagonal).

    Features. The Jaccard term is computed on the L2-normalised banks of
    the ``PseudoLabelHook`` (Theory's re-ranking uses the unnormalised
    ``pool5`` with each COLUMN of the squared distance divided by its
    maximum; ``docs/algorithms/gds.md``). The source term, ``source_feature``:

    - ``'raw_fp16'`` (Theory, ``reid/rerank.py``): the RAW features (the
      ``PseudoLabelHook`` extracts them unnormalised for this distance,
      :attr:`needs_raw_features`): :math:`\min_m \|t_i - x_m\|^2` (fp32
      here, float64 in Theory's ``cdist``) rounded to float16, then
      :math:`1 - e^{-d^2}` and the division by the maximum over the target
      samples in float16, as Theory; the pair sum :math:`s_i + s_j` in
      float64 (Theory sums in float16: at most 5e-5 apart after the factor
      :math:`\lambda`). From :math:`d^2 \approx 8.32` on, the float16
      :math:`1 - e^{-d^2}` is exactly 1. On raw ResNet-50 ``pool5`` (norms
      of tens) the squared distance to the nearest source image is
      expected to be far above that (an inference from the feature scale,
      not measured here): then every :math:`s_i = 1` and the term is the
      constant :math:`2\lambda`, which changes no DBSCAN label (the eps of
      :class:`RhoDBSCANClusterer` is taken from the same shifted matrix).
      :attr:`last_stats` (logged by the ``PseudoLabelHook`` at every
      clustering) gives the minimum, mean and
      maximum of :math:`s` and the fraction of samples at the maximum (1
      when the term is constant).
    - ``'normalized'``: the same formula in float64 on the L2-normalised
      banks (:math:`d^2 \in [0, 4]`), where the term varies from sample to
      sample.

    The ``PseudoLabelHook`` passes the features of its
    ``reference_dataloader`` (the source training set, extracted with the
    current model at every clustering) as ``context.reference_features``
    (:class:`LabelingContext`).

    **Sparse.** Only the pairs stored by the Jaccard distance (overlapping
    k-reciprocal neighbourhoods, :math:`d_J < 1`) are stored; every missing
    pair is at exactly :math:`(1 - \lambda) + \lambda(s_i + s_j)
    \ge (1 - \lambda) + 2\lambda\min_k s_k`, which the returned
    :class:`DistanceMatrix` records as its ``unstored_distance``
    (:class:`UnstoredDistance`), so :class:`RhoDBSCANClusterer` can check
    that its eps and the smallest pairs it averages lie among the stored
    ones. With a radius :math:`r < 1` (``max_distance``, or the pruning
    radius ``eps + 1e-3`` the ``PseudoLabeler`` passes once eps is known)
    only pairs with :math:`d < r` are kept (the inner Jaccard distance is
    called with the radius :math:`r/(1-\lambda)`), which changes no DBSCAN
    label.

    Args:
        k1 (int): Jaccard neighbourhood size. Defaults to 20 (Theory).
        k2 (int): Query-expansion size. Defaults to 6.
        lambda_source (float): :math:`\lambda` in ``[0, 1)``. Defaults to
            0.1.
        knn_backend (str): For both kNN searches: ``'auto'``, ``'faiss'`` or
            ``'torch'``; an approximate backend of :class:`JaccardDistance`
            (``'ivf'``, ``'ivf_pq'``, ``'hnsw'``) applies to the Jaccard
            kNN only, the nearest source image is then searched exactly
            (``'auto'``). Defaults to ``'auto'``.
        knn_precision (str): Of the Jaccard kNN. Defaults to ``'fp32'``.
        max_distance (float): See above. Defaults to 1.0 (every pair with
            overlapping neighbourhoods).
        max_chunk_elems (int): Passed to :class:`JaccardDistance`.
        source_feature (str): ``'raw_fp16'`` or ``'normalized'``; see
            above. Defaults to ``'normalized'``; Theory's configs use
            ``'raw_fp16'``.
        jaccard (str): ``'sparse'`` (default): the Jaccard term of
            :class:`JaccardDistance` on the L2-normalised features, sparse;
            ``'theory_fp16'``: Theory's own re-ranking on the raw features,
            dense and in float16 operation by operation
            (:func:`theory_jaccard_fp16`), mixed with the source term as
            Theory mixes it (the pair sum :math:`s_i + s_j` in float16,
            :math:`2\lambda s_i` on the diagonal); the result is then the
            dense float64 matrix of Theory's ``re_ranking``, bit for bit
            (``docs/parity.md``). ``max_distance`` does not apply to it.
        max_pairs (int, optional): The pair budget of the Jaccard term,
            passed to :class:`JaccardDistance` (see there): the most pairs
            with :math:`d_J` below the inner radius the sparse term may
            hold, else :class:`~.jaccard.PairBudgetError`, raised before
            they are allocated. Every stored pair of the mixed distance is
            such a pair, so it bounds the result too. None: no budget.
            Defaults to 2**25, as :class:`JaccardDistance`. Like
            ``max_distance``, it does not apply to ``jaccard='theory_fp16'``,
            whose matrix is dense (all N² pairs) by design.
        knn_cfg (dict, optional): Options of the approximate Jaccard kNN,
            passed to :class:`JaccardDistance`.
        jaccard_device (str): Where the sparse Jaccard term runs, passed to
            :class:`JaccardDistance`. Defaults to ``'auto'``.
    """

    def __init__(self,
                 k1: int = 20,
                 k2: int = 6,
                 lambda_source: float = 0.1,
                 knn_backend: str = 'auto',
                 knn_precision: str = 'fp32',
                 max_distance: float = 1.0,
                 max_chunk_elems: int = 1 << 22,
                 source_feature: str = 'normalized',
                 jaccard: str = 'sparse',
                 max_pairs: Optional[int] = 1 << 25,
                 knn_cfg: Optional[dict] = None,
                 jaccard_device: str = 'auto') -> None:
        owner = type(self).__name__
        if jaccard not in JACCARD_MODES:
            raise ValueError(f'{owner}: jaccard must be one of '
                             f'{JACCARD_MODES}, got {jaccard!r}')
        if jaccard == 'theory_fp16' and source_feature != 'raw_fp16':
            raise ValueError(f"{owner}: jaccard='theory_fp16' is Theory's "
                             'arithmetic on the raw features; it goes with '
                             "source_feature='raw_fp16'.")
        self.jaccard_mode = jaccard
        self.k1, self.k2 = k1, k2
        if source_feature not in SOURCE_FEATURES:
            raise ValueError(f'{owner}: source_feature must be one of '
                             f'{SOURCE_FEATURES}, got {source_feature!r}')
        self.source_feature = source_feature
        self.lambda_source = check_real(
            owner,
            'lambda_source',
            lambda_source,
            0,
            1,
            high_inclusive=False,
            why='It weighs the source term against the Jaccard distance.')
        self.jaccard = JaccardDistance(
            k1=k1,
            k2=k2,
            knn_backend=knn_backend,
            knn_precision=knn_precision,
            max_distance=1.0,
            max_chunk_elems=max_chunk_elems,
            max_pairs=max_pairs,
            knn_cfg=knn_cfg,
            jaccard_device=jaccard_device)
        self.knn_backend = knn_backend
        # the nearest source image is searched exactly
        self._source_backend = 'auto' if knn_backend in APPROX_BACKENDS \
            else knn_backend
        self.max_distance = max_distance
        #: ``s`` of the last call (``(N,)``), for diagnostics.
        self.last_source_term: Optional[np.ndarray] = None
        #: Summary of ``s`` of the last call (logged by the hook).
        self.last_stats: dict = {}

    @property
    def needs_raw_features(self) -> bool:
        """bool: The source term reads the raw (unnormalised) features."""
        return self.jaccard_mode == 'theory_fp16' or (
            self.source_feature == 'raw_fp16' and self.lambda_source > 0)

    def source_term(self, feats: torch.Tensor,
                    reference_features: torch.Tensor) -> np.ndarray:
        r"""``s`` ``(N,)``: the max-normalised :math:`1 - e^{-d^2_{min}}`
        in float64 (``source_feature='normalized'``)."""
        d2 = nearest_sqdist(feats, reference_features, self._source_backend)
        raw = -np.expm1(-d2)  # 1 - exp(-d2), accurate for small d2
        top = raw.max() if raw.size else 0.0
        return raw / top if top > 0 else np.zeros_like(raw)

    def source_term_fp16(self, feats: torch.Tensor,
                         reference_features: torch.Tensor) -> np.ndarray:
        r"""``s`` ``(N,)`` as Theory computes it (``'raw_fp16'``).

        :math:`d^2_{min}` rounded to float16 (``inf`` beyond 65504, as
        Theory's cast), :math:`1 - e^{-d^2}` and the division by its
        maximum in float16 arithmetic, returned as float64. The minimum over
        the source commutes with the monotone float16 rounding, so taking
        it first gives Theory's values. All zeros when the maximum is 0
        (Theory would divide by zero).
        """
        d2 = nearest_sqdist(feats, reference_features, self._source_backend)
        with np.errstate(over='ignore'):
            d2 = d2.astype(np.float16)
        raw = (np.float16(1) - np.exp(-d2)).astype(np.float16)
        top = raw.max() if raw.size else np.float16(0)
        if not top > 0:
            return np.zeros(raw.shape, dtype=np.float64)
        return (raw / top).astype(np.float16).astype(np.float64)

    def compute(self, features: torch.Tensor, context: LabelingContext,
                max_distance: float) -> DistanceMatrix:
        """Mixed distance of all pairs of rows of ``features`` ``(N, D)``.

        Args:
            features (Tensor): ``(N, D)`` L2-normalised target features.
            context (LabelingContext): Reads ``reference_features``
                (``(M, D)`` L2-normalised source features; required when
                ``lambda_source > 0`` with ``source_feature='normalized'``)
                and, with ``'raw_fp16'``, ``raw_features`` and
                ``raw_reference_features`` (the same banks unnormalised).
            max_distance (float): The radius (see above).

        Returns:
            DistanceMatrix: N x N float32 CSR (diagonal stored as 0, columns
            sorted) with its ``unstored_distance`` and the source-term
            ``stats``; with ``jaccard='theory_fp16'`` the dense float64
            matrix of Theory.
        """
        feats = features
        raw_features = context.raw_features
        lam = self.lambda_source
        raw_mode = self.needs_raw_features
        if lam > 0 and (context.reference_features if not raw_mode else
                        context.raw_reference_features) is None:
            raise ValueError(
                f'{type(self).__name__} (lambda_source={lam}) needs the '
                'source features: give the PseudoLabelHook a '
                'reference_dataloader over the source training set.')
        if raw_mode and raw_features is None:
            raise ValueError(
                f"{type(self).__name__}(source_feature='raw_fp16') needs "
                'the raw (unnormalised) target features as raw_features '
                '(the PseudoLabelHook passes them).')
        n = feats.shape[0]
        if lam == 0:
            s = np.zeros(n)
        elif raw_mode:
            if raw_features.shape[0] != n:
                raise ValueError(f'raw_features has {raw_features.shape[0]} '
                                 f'rows, feats {n}')
            s = self.source_term_fp16(raw_features,
                                      context.raw_reference_features)
        else:
            s = self.source_term(feats, context.reference_features)
        self.last_source_term = s
        self.last_stats = {} if lam == 0 or not n else dict(
            source_term_min=float(s.min()),
            source_term_mean=float(s.mean()),
            source_term_max=float(s.max()),
            source_term_at_max=float((s >= 1.0).mean()))
        if self.jaccard_mode == 'theory_fp16':
            return DistanceMatrix(
                self._theory_dense(raw_features, s),
                max_distance=math.inf,
                stats=dict(self.last_stats))
        pruned = max_distance < 1
        inner = min(1.0, max_distance / (1 - lam)) if pruned else 1.0
        dj = self.jaccard(feats, context, pruning_radius=inner).matrix
        rows = np.repeat(np.arange(n), np.diff(dj.indptr))
        cols = dj.indices
        vals = (1 - lam) * dj.data.astype(np.float64) + lam * (s[rows] +
                                                               s[cols])
        vals[rows == cols] = 0
        keep = (vals < max_distance) | (rows == cols) if pruned \
            else np.ones(len(vals), dtype=bool)
        counts = np.bincount(rows[keep], minlength=n)
        out = sp.csr_matrix(
            (vals[keep].astype(np.float32), cols[keep],
             np.concatenate([[0], np.cumsum(counts)])),
            shape=(n, n))
        return DistanceMatrix(
            out,
            unstored_distance=UnstoredDistance(
                base=(1 - lam) * inner,
                row=lam * s,
                cap=max_distance if pruned else math.inf),
            max_distance=max_distance,
            stats=dict(self.last_stats))

    def _theory_dense(self, raw_features: torch.Tensor,
                      s: np.ndarray) -> np.ndarray:
        """Theory's ``re_ranking`` result: ``(1 - λ) d_J + λ (s_i + s_j)``
        with its float16 operations, dense float64 (see ``jaccard``)."""
        lam = self.lambda_source
        dj = theory_jaccard_fp16(
            raw_features.detach().cpu().numpy(), self.k1, self.k2)
        if lam == 0:
            return dj.astype(np.float64)
        s16 = s.astype(np.float16)  # s is float16 already (raw_fp16)
        pair = (s16[:, None] + s16[None, :]).astype(np.float64)
        return dj * (1 - lam) + pair * lam
