# Copyright (c) mmreid_usl contributors. All rights reserved.
"""k-nearest neighbours of every row among all rows: exact, or approximate
through :mod:`.approx_knn`."""
from typing import Optional, Tuple

import torch

from mmreid_usl.utils.search import PRECISIONS, check_backend, topk_search

#: ``knn_search`` backends that are approximate -> their faiss index type
APPROX_BACKENDS = {'ivf': 'ivf_flat', 'ivf_pq': 'ivf_pq', 'hnsw': 'hnsw'}


def _put_self_first(sqdist: torch.Tensor,
                    index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Make every row start with the query itself.

    Exact duplicates tie with the query at distance 0, so a backend may rank
    a duplicate first or (with more than ``k`` duplicates) drop the query.
    Rows already starting with themselves are left untouched; in the others
    the query is moved (or inserted) to rank 0 and the remaining order kept.
    """
    n = index.shape[0]
    arange = torch.arange(n, device=index.device)
    bad = torch.nonzero(index[:, 0] != arange).flatten()
    if bad.numel() == 0:
        return sqdist, index
    rows_i, rows_d = index[bad], sqdist[bad]
    is_self = rows_i == bad[:, None]
    present = is_self.any(1)
    # stable sort on "is not self" puts self first, keeps the others' order
    order = torch.argsort((~is_self).to(torch.int8), dim=1, stable=True)
    moved_i, moved_d = rows_i.gather(1, order), rows_d.gather(1, order)
    shifted_i = torch.cat([bad[:, None], rows_i[:, :-1]], 1)
    shifted_d = torch.cat([rows_d[:, :1], rows_d[:, :-1]], 1)
    index[bad] = torch.where(present[:, None], moved_i, shifted_i)
    sqdist[bad] = torch.where(present[:, None], moved_d, shifted_d)
    return sqdist, index


def knn_search(feats: torch.Tensor,
               k: int,
               backend: str = 'auto',
               precision: str = 'fp32',
               chunk_size: Optional[int] = None,
               approx_cfg: Optional[dict] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """k-nearest neighbours of every row among all rows (brute force unless
    an approximate backend is named).

    Squared Euclidean distance ``||x_i||^2 + ||x_j||^2 - 2 x_i . x_j``. With
    ``precision='fp32'`` the search is exact (up to float32 rounding); the
    reduced precisions run the matrix product in fp16/bf16 (fast on GPUs and
    on CPUs with AVX512-BF16/AMX) and return float32 distances of that
    product. The query itself is always at rank 0 (ties with exact
    duplicates are resolved in its favour).

    The search is :func:`mmreid_usl.utils.search.topk_search` of the rows
    against themselves (``metric='sqeuclidean'``), whose backends are:

    - ``'faiss'``: ``IndexFlatL2`` on CPU; ``faiss.knn_gpu`` when the
      features are on CUDA and ``faiss.get_num_gpus() > 0``. fp32 only.
    - ``'torch'``: chunked ``mm`` + ``topk`` on the features' device, any
      precision.
    - ``'auto'``: faiss when importable (GPU faiss for CUDA features,
      otherwise torch on the GPU), torch for reduced precisions.

    The approximate backends (:data:`APPROX_BACKENDS`) are
    :func:`~mmreid_usl.clustering.approx_knn.approx_knn_search` with
    ``index_type`` ``'ivf_flat'`` (``'ivf'``), ``'ivf_pq'`` or ``'hnsw'``,
    fp32 only, and ``approx_cfg`` its keyword arguments (``nprobe``,
    ``ef_search``, ``recall_target``, ``reverse``, ...).

    Args:
        feats (Tensor): Features of shape (N, D).
        k (int): Neighbours per row, the row itself included (k <= N).
        backend (str): ``'auto'``, ``'faiss'``, ``'torch'``, or the
            approximate ``'ivf'``, ``'ivf_pq'``, ``'hnsw'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
        chunk_size (int, optional): Query rows per chunk of the torch backend.
        approx_cfg (dict, optional): Keyword arguments of the approximate
            search. Defaults to None (its defaults).

    Returns:
        tuple[Tensor, Tensor]: ``sqdist`` float32 (N, k) ascending and
        ``index`` int64 (N, k), on the features' device.
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {list(PRECISIONS)}')
    n = feats.shape[0]
    if backend in APPROX_BACKENDS:
        if precision != 'fp32':
            raise ValueError(f'the approximate kNN backend {backend!r} '
                             f'searches in fp32; got precision={precision!r}')
        from .approx_knn import approx_knn_search
        return approx_knn_search(feats, k, index_type=APPROX_BACKENDS[backend],
                                 **(approx_cfg or {}))
    if approx_cfg:
        raise ValueError(f'approx_cfg is for the approximate backends '
                         f'{sorted(APPROX_BACKENDS)}, not {backend!r}')
    check_backend(backend)
    if not 0 < k <= n:
        raise ValueError(f'k={k} must be in [1, N={n}]')
    sqdist, index = topk_search(feats,
                                feats,
                                k,
                                metric='sqeuclidean',
                                backend=backend,
                                precision=precision,
                                chunk_size=chunk_size)
    return _put_self_first(sqdist, index)
