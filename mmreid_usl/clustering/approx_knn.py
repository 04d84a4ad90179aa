# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Approximate k-nearest neighbours of every row among all rows (faiss IVF).

The exact search (:func:`knn_search`) costs ``O(N² D)``: 468 s at
N = 200,000 × 256-d on 2 CPU cores, hours at a million. An inverted file
(IVF, Jégou et al., "Product Quantization for Nearest Neighbor Search", TPAMI
2011) clusters the rows into ``nlist`` cells with k-means and searches every
query only in the ``nprobe`` cells whose centroids are nearest:
``O(N · nprobe · N / nlist · D)``, i.e. ``O(N^1.5 · nprobe · D / 4)`` with the
default ``nlist ≈ 4 √N``.

Parameters, derived from N unless set:

- ``nlist = clip(round(4 √N), 1, N // 39)`` (faiss's rule of thumb is
  ``4..16 √N``; 39 training points per centroid is faiss's minimum);
- k-means is trained on ``min(N, 64 · nlist)`` rows drawn with ``seed``;
- ``nprobe``: the smallest power of two (up to ``nlist``) whose recall@k on
  ``calib_queries`` sampled queries, against their exact kNN, reaches
  ``recall_target`` (default 0.95). The calibration costs one exact search
  of the sample, ``O(calib_queries · N · D)``. The labels' ARI is sensitive
  to the recall (measured at N = 20,000 × 256-d of the benchmark's synthetic
  distribution, nlist 512: recall 0.83 / 0.89 / 0.99 gives ARI 0.76 / 0.96 /
  1.0 against the exact labels, with nprobe 32 / 64 / 256);
- optionally ``refine_iters`` neighbour-of-neighbour refinements
  (:func:`refine_knn`, ``O(N k (1 + expand) D)``); on that distribution one
  pass lifted recall only from 0.71 to 0.74 (nprobe 8), so it is off by
  default.

Options: ``index_type='ivf_pq'`` stores the rows as product-quantised codes
(``pq_m`` sub-quantisers of 8 bits; memory ``N · pq_m`` bytes instead of
``4 N D``) and searches ``refine_factor · k`` candidates that are then
re-scored exactly; ``pca_dim`` / ``whiten`` search in a PCA (optionally
whitened: eigenvalue power -1/2) projection, also re-scored exactly in the
original space. The output contract is that of :func:`knn_search`: float32
squared distances ``||x_i - x_j||²`` ascending and int64 indices, the row
itself at rank 0.

Hand-written here because no library has it: the derivation of nlist and the
recall-targeted calibration of nprobe, the exact re-scoring contract and the
fallback to the exact search for rows the IVF leaves short of k results.
"""
import math
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .knn import _put_self_first

__all__ = ['default_nlist', 'approx_knn_search', 'recall_at_k']

INDEX_TYPES = ('ivf_flat', 'ivf_pq')


def default_nlist(n: int) -> int:
    """``clip(round(4 √N), 1, N // 39)``."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def recall_at_k(approx: torch.Tensor,
                exact: torch.Tensor,
                k: Optional[int] = None) -> float:
    """Mean fraction of the exact k nearest neighbours that the approximate
    search found: ``(1 / Q) Σ_q |A_q ∩ E_q| / k`` over the first ``k``
    columns of both index lists (``(Q, >= k)``, same query rows).

    Args:
        approx (Tensor | np.ndarray): Approximate kNN indices.
        exact (Tensor | np.ndarray): Exact kNN indices.
        k (int, optional): Columns compared. Defaults to all of ``exact``.

    Returns:
        float: recall@k in [0, 1].
    """
    a = np.asarray(approx.cpu() if isinstance(approx, torch.Tensor)
                   else approx)
    e = np.asarray(exact.cpu() if isinstance(exact, torch.Tensor) else exact)
    k = e.shape[1] if k is None else k
    a, e = a[:, :k].astype(np.int64), e[:, :k].astype(np.int64)
    if len(e) == 0:
        return 1.0
    hits, step = 0, max(1, (1 << 24) // (k * k))
    for s in range(0, len(e), step):
        hits += int((a[s:s + step, None, :] == e[s:s + step, :, None]).any(
            2).sum())
    return hits / (len(e) * k)


def _exact_sqdist(x: np.ndarray, rows: np.ndarray,
                  cols: np.ndarray) -> np.ndarray:
    """``||x_i - x_j||²`` in float32 for the pairs (rows[p], cols[p]) of
    every row p of ``cols`` (``(Q, c)``), in chunks."""
    out = np.empty(cols.shape, dtype=np.float32)
    step = max(1, (1 << 22) // max(x.shape[1] * cols.shape[1], 1))
    for s in range(0, len(rows), step):
        diff = x[cols[s:s + step]] - x[rows[s:s + step], None, :]
        out[s:s + step] = np.einsum('qcd,qcd->qc', diff, diff)
    return out


def refine_knn(x: np.ndarray, sqdist: np.ndarray, index: np.ndarray,
               expand: int = 10,
               chunk: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """One neighbour-of-neighbour refinement of a kNN graph (the step of
    NN-descent, Dong et al., WWW 2011): the candidates of row i are its list
    and the lists of its first ``expand`` neighbours; all are re-scored
    exactly (:func:`_exact_sqdist`) and the k best kept, ties by index.
    Recall only goes up: the old list is among the candidates.

    Args:
        x (np.ndarray): Features ``(N, D)`` float32.
        sqdist (np.ndarray): Unused except for its shape (kept for symmetry).
        index (np.ndarray): kNN lists ``(N, k)``.
        expand (int): Neighbours whose lists are merged.
        chunk (int): Rows per step.

    Returns:
        tuple[np.ndarray, np.ndarray]: The refined float32 ``sqdist`` and
        int64 ``index``.
    """
    n, k = index.shape
    m = min(expand, k)
    out_d = np.empty((n, k), np.float32)
    out_i = np.empty((n, k), np.int64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        own = index[s:e]
        cand = np.concatenate(
            [own, index[own[:, :m]].reshape(e - s, -1)], 1)
        cand.sort(1)
        dup = np.zeros(cand.shape, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        d = _exact_sqdist(x, np.arange(s, e), cand)
        d[dup] = np.inf
        out_d[s:e], out_i[s:e] = _sort_rows(d, cand, k)
    return out_d, out_i


def _sort_rows(d: np.ndarray, i: np.ndarray,
               k: int) -> Tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((i, d), axis=1)[:, :k]
    return np.take_along_axis(d, order, 1), np.take_along_axis(i, order, 1)


@torch.no_grad()
def approx_knn_search(feats: torch.Tensor,
                      k: int,
                      index_type: str = 'ivf_flat',
                      nlist: Optional[int] = None,
                      nprobe: Optional[int] = None,
                      recall_target: float = 0.95,
                      refine_iters: int = 0,
                      calib_queries: int = 256,
                      pca_dim: Optional[int] = None,
                      whiten: bool = False,
                      pq_m: Optional[int] = None,
                      refine_factor: int = 2,
                      train_size: Optional[int] = None,
                      seed: int = 0,
                      info: Optional[Dict] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Approximate kNN of every row among all rows with a faiss IVF index.

    See the module docstring for the parameter rules. On CUDA features the
    index runs on the GPU when faiss has GPUs (``faiss-gpu``), else on CPU.

    Args:
        feats (Tensor): Features ``(N, D)``.
        k (int): Neighbours per row, the row itself included (k <= N).
        index_type (str): ``'ivf_flat'`` or ``'ivf_pq'``.
        nlist (int, optional): IVF cells. Defaults to :func:`default_nlist`.
        nprobe (int, optional): Cells searched per query. Defaults to the
            calibrated value for ``recall_target``.
        recall_target (float): recall@k of the IVF search (before the
            refinement) that the calibration aims at. Defaults to 0.95.
        refine_iters (int): Neighbour-of-neighbour refinements
            (:func:`refine_knn`) after the search. Defaults to 0.
        calib_queries (int): Sampled queries of the calibration.
        pca_dim (int, optional): Search in a PCA projection to this size.
        whiten (bool): Whiten the PCA projection (needs ``pca_dim``).
        pq_m (int, optional): PQ sub-quantisers (``D' % pq_m == 0``).
            Defaults to the largest divisor of ``D'`` <= ``D' / 4``.
        refine_factor (int): Candidates per query re-scored exactly, in
            units of k, when the search space is not exact (PQ or PCA).
        train_size (int, optional): k-means training rows. Defaults to
            ``min(N, 64 nlist)``.
        seed (int): Seed of the training and calibration draws.
        info (dict, optional): Filled with ``nlist``, ``nprobe``,
            ``calib_recall``, ``train_size``, ``fallback_rows``.

    Returns:
        tuple[Tensor, Tensor]: float32 ``sqdist`` ``(N, k)`` ascending and
        int64 ``index`` ``(N, k)``, self first, on the features' device.
    """
    import faiss
    if index_type not in INDEX_TYPES:
        raise ValueError(f'index_type must be one of {INDEX_TYPES}, got '
                         f'{index_type!r}')
    if whiten and pca_dim is None:
        raise ValueError('whiten=True needs pca_dim')
    info = {} if info is None else info
    device = feats.device
    x = np.ascontiguousarray(feats.detach().float().cpu().numpy())
    n, dim = x.shape
    if not 0 < k <= n:
        raise ValueError(f'k={k} must be in [1, N={n}]')
    nlist = default_nlist(n) if nlist is None else int(nlist)
    rng = np.random.default_rng(seed)
    train_size = min(n, 64 * nlist) if train_size is None else min(
        n, train_size)
    train = x[np.sort(rng.choice(n, train_size, replace=False))] \
        if train_size < n else x
    # the searched space: optional PCA / whitening
    pca = None
    if pca_dim is not None:
        pca = faiss.PCAMatrix(dim, int(pca_dim), -0.5 if whiten else 0.0)
        pca.train(train)
        xs, train_s = pca.apply(x), pca.apply(train)
    else:
        xs, train_s = x, train
    ds = xs.shape[1]
    quantizer = faiss.IndexFlatL2(ds)
    if index_type == 'ivf_pq':
        if pq_m is None:
            pq_m = max(m for m in range(1, max(1, ds // 4) + 1)
                       if ds % m == 0)
        index = faiss.IndexIVFPQ(quantizer, ds, nlist, int(pq_m), 8)
    else:
        index = faiss.IndexIVFFlat(quantizer, ds, nlist)
    gpu = feats.is_cuda and faiss.get_num_gpus() > 0
    if gpu:  # pragma: no cover - needs faiss-gpu
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, device.index or 0, index)
    if hasattr(index, 'cp'):
        index.cp.seed = seed
    index.train(train_s)
    index.add(xs)
    exact_space = index_type == 'ivf_flat' and pca is None
    k_search = k if exact_space else min(n, refine_factor * k)
    # nprobe from the recall target on sampled queries
    if nprobe is None:
        from mmreid_usl.utils.search import topk_search
        q = np.sort(rng.choice(n, min(calib_queries, n), replace=False))
        _, truth = topk_search(torch.from_numpy(x[q]), torch.from_numpy(x),
                               k, backend='auto')
        nprobe, recall = 1, 0.0
        while True:
            index.nprobe = nprobe
            _, cand = index.search(xs[q], k_search)
            if not exact_space:
                d = _exact_sqdist(x, q, np.maximum(cand, 0))
                d[cand < 0] = np.inf
                _, cand = _sort_rows(d, cand, k)
            recall = recall_at_k(cand, truth.numpy(), k)
            if recall >= recall_target or nprobe >= nlist:
                break
            nprobe = min(nlist, nprobe * 2)
        info['calib_recall'] = recall
    index.nprobe = int(nprobe)
    d, i = index.search(xs, k_search)
    if not exact_space:
        d = _exact_sqdist(x, np.arange(n), np.maximum(i, 0))
        d[i < 0] = np.inf
        d, i = _sort_rows(d, i, k)
    for _ in range(refine_iters):
        d, i = refine_knn(x, d, np.where(i < 0, np.arange(n)[:, None], i))
    # rows the probed cells left short of k results: exact search
    short = np.flatnonzero((i < 0).any(1) | ~np.isfinite(d).all(1))
    if len(short):
        from mmreid_usl.utils.search import topk_search
        dd, ii = topk_search(torch.from_numpy(x[short]), torch.from_numpy(x),
                             k, backend='auto')
        d[short], i[short] = dd.numpy(), ii.numpy()
    info.update(nlist=nlist, nprobe=int(nprobe), train_size=train_size,
                fallback_rows=int(len(short)), index_type=index_type,
                pca_dim=pca_dim, whiten=whiten, gpu=gpu)
    sqdist, index_t = _put_self_first(
        torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(i, dtype=np.int64)))
    return sqdist.to(device), index_t.to(device)
