# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Sparse k-reciprocal Jaccard distance used for pseudo-labelling.

The steps live by concern: the encoding ``V`` (:mod:`.jaccard_encoding`), the
pair budget (:mod:`.jaccard_budget`) and the chunked ``d_J``
(:mod:`.jaccard_chunks`); the same steps in torch, on the kNN's device
(``jaccard_device``), in :mod:`.jaccard_torch`.
"""
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils.validation import check_choice, check_int
from .base import BaseDistance, DistanceMatrix, LabelingContext
from .jaccard_budget import (BYTES_PER_PAIR, PAIR_SAMPLE_ROWS, PairBudget,
                             PairBudgetError)
from .jaccard_chunks import ChunkedJaccard
from .jaccard_encoding import (KReciprocalEncoding, _ragged_arange,
                               _reciprocal, _row_ids)
from .jaccard_torch import (JACCARD_DEVICES, TorchJaccard,
                            resolve_jaccard_device)
from .knn import knn_search

__all__ = [
    'JaccardDistance', 'PairBudgetError', 'PAIR_SAMPLE_ROWS', 'BYTES_PER_PAIR',
    '_row_ids', '_ragged_arange', '_reciprocal'
]


@TASK_UTILS.register_module()
class JaccardDistance(KReciprocalEncoding, PairBudget, ChunkedJaccard,
                      TorchJaccard, BaseDistance):
    """k-reciprocal encoding Jaccard distance, computed sparsely.

    The distance of Zhong et al., "Re-ranking Person Re-identification with
    k-reciprocal Encoding" (CVPR 2017, https://arxiv.org/abs/1701.08398), in
    the variant that the code of Cluster Contrast, ICE, DCMIP, SpCL and
    OpenUnReID uses for pseudo-labels
    (``docs/algorithms/common.md#jaccard-distance``), with all of that
    code's quirks:

    1. kNN lists of ``k1`` entries, the point itself at rank 0.
    2. k-reciprocal sets ``R(i, k)`` from the first ``k1`` entries and
       ``R(i, k1/2)`` from the first ``round(k1/2) + 1`` entries.
    3. ``E(i) = R(i, k1) ∪ {R(c, k1/2) : c ∈ R(i, k1),
       |R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|}``.
    4. ``V[i, j] = exp(-d²_ij) / Σ_{j'∈E(i)} exp(-d²_ij')`` for j ∈ E(i),
       with ``d²_ij = 2 - 2 x_i·x_j``.
    5. Query expansion: ``V_i ← mean_{j ∈ top-k2(i)} V_j``.
    6. ``d_J(i, j) = 1 - m/(2 - m)``, ``m = Σ_k min(V_ik, V_jk)``, clipped
       at 0.

    The official code holds V and d_J as dense N×N arrays. Here every step is
    a sparse matrix: V has O(N·|E|) entries, and ``m`` is non-zero only for
    pairs whose expanded sets overlap, so only those pairs (the ones with
    ``d_J < 1``) are stored. ``m`` is a (+, min) sparse product, which no
    library provides; it is hand-written below with vectorised numpy: all
    (i, j, k) triples sharing a column k are expanded per chunk of rows, and
    each distinct pair (i, j) of the chunk (``np.unique`` of the triples'
    keys: the pattern of ``V Vᵀ``) gets the ``np.bincount`` sum of its
    triples. V and m are computed in
    float64, ``d_J`` in float32 as in the official code; values agree with
    the dense float32 formulation to float32 rounding (~1e-6).

    Args:
        k1 (int): Neighbourhood size (30 in CC/ICE/DCMIP). Defaults to 30.
        k2 (int): Query-expansion size (k2 <= k1). Defaults to 6.
        knn_backend (str): ``'auto'``, ``'faiss'`` or ``'torch'`` (exact),
            or ``'ivf'``, ``'ivf_pq'``, ``'hnsw'`` (approximate, for N far
            beyond what the exact O(N² D) search affords; labels then differ
            from the exact ones where the search misses neighbours: measure
            with ``benchmarks/pseudo_label_bench.py --compare-exact``), see
            :func:`knn_search`. Defaults to ``'auto'``.
        knn_cfg (dict, optional): Keyword arguments of the approximate
            search (:func:`.approx_knn.approx_knn_search`: ``ef_search``,
            ``nprobe``, ``recall_target``, ``reverse``, ``refine_iters``,
            ...), and ``camera_centred``: the IVF cells built on the
            features minus their camera's mean, with the camera ids of the
            labelling context (a camera bias otherwise splits the cells by
            camera: ARI 0.32 against 0.95 at N = 1,000,000 of the
            benchmark's synthetic features). ``'auto'`` (the default): on
            for ``'ivf'`` / ``'ivf_pq'`` when the context has camera ids;
            ``True``: on, an error without them; ``False``: off.
            Defaults to None.
        knn_precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'`` for the kNN
            matrix product. With reduced precision every ``d²`` of step 4 is
            recomputed in fp32. Defaults to ``'fp32'``.
        max_distance (float): Store only pairs with ``d_J < max_distance``.
            The default 1.0 stores every overlapping pair, or those below the
            pruning radius of the call (:meth:`BaseDistance.resolve_radius`:
            the :class:`PseudoLabeler` passes ``eps + 1e-3`` of DBSCAN,
            which only needs the pairs ``<= eps``), which gives identical
            labels with far less memory on data whose expanded sets overlap
            a lot (e.g. very large N). Defaults to 1.0.
        max_chunk_elems (int): Bound on the (i, j, k) triples expanded at a
            time (memory ~50 bytes each). Defaults to 2**22.
        max_pairs (int, optional): Pair budget: the most pairs (i, j) with
            ``d_J < max_distance`` the result may hold (both triangles and
            the diagonal counted; about ``BYTES_PER_PAIR`` bytes each up to
            the end of DBSCAN). Re-ID data keeps 20-200 per image with the
            eps pruning of :class:`PseudoLabeler`, i.e. at most a few
            million. Images or features that are nearly all alike (many
            copies of one image, a collapsed encoder) keep a pair for almost
            every pair of images, O(N²), and mostly one cluster. The budget
            is checked before any pair is stored, from the rows of a sample
            (see :meth:`check_pair_budget`), and again while the pairs are
            collected, so memory never goes beyond it; either raises
            :class:`PairBudgetError`. None: no budget. Defaults to 2**25
            (about 4.7 GB).
        jaccard_device (str): Where steps 2-6 run after the kNN: ``'cpu'``
            the numpy/scipy path described above; ``'auto'`` the torch path
            of :mod:`.jaccard_torch` on the GPU when the kNN tensors are on
            a CUDA device (features on CUDA), the numpy/scipy path
            otherwise; ``'cuda'`` the torch path on the GPU; ``'torch'``
            the torch path on the kNN tensors' device, the CPU included
            (tests, benchmarks). Both paths store the same pairs, values
            equal to float32 rounding (``tests/test_clustering/
            test_jaccard_torch.py``). Defaults to ``'auto'``.

    Examples:
        >>> feats = torch.nn.functional.normalize(torch.randn(100, 16), dim=1)
        >>> dist = JaccardDistance(k1=10, k2=3)(feats)
        >>> dist.matrix.shape
        (100, 100)
    """

    def __init__(self,
                 k1: int = 30,
                 k2: int = 6,
                 knn_backend: str = 'auto',
                 knn_precision: str = 'fp32',
                 max_distance: float = 1.0,
                 max_chunk_elems: int = 1 << 22,
                 max_pairs: Optional[int] = 1 << 25,
                 knn_cfg: Optional[dict] = None,
                 jaccard_device: str = 'auto') -> None:
        if not 1 <= k2 <= k1:
            raise ValueError(f'need 1 <= k2 <= k1, got k1={k1}, k2={k2}')
        if max_pairs is not None:
            check_int(type(self).__name__, 'max_pairs', max_pairs, low=1,
                      why='It bounds the stored pairs (None: no bound).')
        check_choice('jaccard_device', jaccard_device, JACCARD_DEVICES,
                     owner=type(self).__name__)
        self.jaccard_device = jaccard_device
        self.max_pairs = max_pairs
        self.k1 = k1
        self.k2 = k2
        self.knn_backend = knn_backend
        self.knn_precision = knn_precision
        self.knn_cfg = dict(knn_cfg or {})
        self.max_distance = max_distance
        self.max_chunk_elems = max_chunk_elems

    def compute(self, features: torch.Tensor, context: LabelingContext,
                max_distance: float) -> DistanceMatrix:
        """Jaccard distance of all pairs of rows of ``features`` (N, D).

        Args:
            features (Tensor): ``(N, D)`` L2-normalised features.
            context (LabelingContext): Its ``camids``, for the
                camera-centred IVF cells (``knn_cfg['camera_centred']``).
            max_distance (float): The radius of this call.

        Returns:
            DistanceMatrix: N×N float32 CSR, each row holding the pairs with
            distance < ``max_distance`` (explicit zeros kept, diagonal
            included), columns sorted; every missing pair is at 1.
        """
        feats = features.detach().float()
        k = min(self.k1, feats.shape[0])
        approx_cfg = dict(self.knn_cfg)
        centred = approx_cfg.pop('camera_centred', 'auto')
        if centred == 'auto':
            centred = (context.camids is not None
                       and self.knn_backend in ('ivf', 'ivf_pq'))
        if centred:
            if context.camids is None:
                raise ValueError(
                    'knn_cfg=dict(camera_centred=True) needs the camera id '
                    'of every image (LabelingContext.camids); the '
                    'PseudoLabelHook passes its dataset\'s, a direct call '
                    'passes camids= to the labeler')
            approx_cfg['camids'] = context.camids
        sqdist, index = knn_search(
            feats, k, backend=self.knn_backend, precision=self.knn_precision,
            approx_cfg=approx_cfg)
        return DistanceMatrix(
            self.from_knn(feats, sqdist, index, max_distance=max_distance),
            max_distance=max_distance)

    # ------------------------------------------------------------------
    def from_knn(self,
                 feats: torch.Tensor,
                 sqdist: Optional[torch.Tensor],
                 index: torch.Tensor,
                 max_distance: Optional[float] = None) -> sp.csr_matrix:
        """Jaccard distance from a precomputed kNN (self at rank 0).

        Args:
            feats (Tensor): Features (N, D).
            sqdist (Tensor, optional): Squared distances of ``index``; when
                given (fp32 kNN), they are reused for the pairs they cover.
            index (Tensor): kNN indices (N, >= k1), self at rank 0.
            max_distance (float, optional): Keep the pairs below it.
                Defaults to ``self.max_distance``.

        Returns:
            scipy.sparse.csr_matrix: The bare N×N matrix (missing pairs 1).
        """
        if max_distance is None:
            max_distance = self.max_distance
        device = resolve_jaccard_device(self.jaccard_device, index)
        if device is not None:
            return self._from_knn_torch(feats, sqdist, index, max_distance,
                                        device)
        n = feats.shape[0]
        k1 = min(self.k1, n)
        index_np = np.ascontiguousarray(
            index[:, :k1].cpu().numpy().astype(np.int64))
        v = self._encode(feats, sqdist, index_np)
        v = self._query_expand(v, index_np)
        # V is O(N * k1) entries; the pairs of step 6 can be O(N²): check
        # them against the budget before allocating any of them
        self.check_pair_budget(v, feats, index_np, max_distance)
        return self._jaccard(v, max_distance)
