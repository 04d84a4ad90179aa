# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Approximate k-nearest neighbours of every row among all rows (faiss IVF,
HNSW).

The exact search (:func:`knn_search`) costs ``O(N² D)``: 201 s at
N = 200,000 × 256-d on 2 idle CPU cores, about 1.5 hours at a million. An
inverted file (IVF, Jégou et al., "Product Quantization for Nearest Neighbor
Search", TPAMI 2011) clusters the rows into ``nlist`` cells with k-means and
searches every query only in the ``nprobe`` cells whose centroids are
nearest:
``O(N · nprobe · N / nlist · D)``, i.e. ``O(N^1.5 · nprobe · D / 4)`` with the
default ``nlist ≈ 4 √N``. On a CPU the ``ivf_flat`` search of all rows runs
as a self-join (:mod:`.ivf_join`: per cell, one matrix product of the
queries probing it and the rows it holds, at BLAS speed instead of faiss's
memory-bound per-query scan), which ranks every candidate of the probed
cells in the original space whatever space the cells were built in. The
cells are built by spherical k-means (unit centroids, probed by inner
product; ``spherical=False``: faiss's L2 k-means) on the partitioned
space: the rows, minus their camera's mean with ``camids``, projected with
``pca_dim``.

Parameters, derived from N unless set:

- ``nlist = clip(round(4 √N), 1, N // 39)`` (faiss's rule of thumb is
  ``4..16 √N``; 39 training points per centroid is faiss's minimum);
- k-means (``kmeans_iters`` iterations, default faiss's 10) is trained on
  ``min(N, 39 · nlist)`` rows drawn with ``seed``;
- ``nprobe``: the smallest power of two whose recall@k on
  ``calib_queries`` sampled queries, against their exact kNN, reaches
  ``recall_target`` (default 0.95), or ``max_nprobe`` if none below it
  does (by default where a query's candidates ``nprobe · N / nlist`` reach
  ``max(4096, N / 128)``). The calibration costs one exact search
  of the sample, ``O(calib_queries · N · D)``. The labels' ARI is sensitive
  to the recall (measured at N = 20,000 × 256-d of the benchmark's synthetic
  distribution, nlist 512: recall 0.83 / 0.89 / 0.99 gives ARI 0.76 / 0.96 /
  1.0 against the exact labels, with nprobe 32 / 64 / 256);
- ``refine_iters`` refinements of NN-descent's kind (Dong et al., WWW
  2011): the lists are merged with their reverse neighbours
  (:func:`reverse_merge`), then each pass adds the lists of a row's
  ``refine_expand`` nearest neighbours (:func:`refine_knn`,
  ``O(N k (1 + refine_expand) D)``) and merges the reverse neighbours
  again. Where an identity is spread over more cells than a query probes,
  the lists of its images found hold the others, and a pair one row's
  search missed is often in the other row's list. At N = 200,000 × 256-d,
  noise norm 1.4, camera-centred cells, nprobe 8, ``refine_expand`` 5:
  same-id images among the 30 found 14.3 (search) -> 15.3 (reverse merge)
  -> 18.0 -> 19.5 with one and two passes (the exact lists: 19.5), labels'
  ARI against the exact ones 0.81 -> 0.85 -> 0.94 -> 0.96, ~20 s a pass
  (without the reverse merges two passes reached 16.7 and 0.90). By default
  (``refine_iters=None``) two passes run when the search's recall@k on the
  sampled queries is below ``recall_target`` and none otherwise.

``index_type='hnsw'`` (Malkov & Yashunin, "Efficient and robust approximate
nearest neighbor search using Hierarchical Navigable Small World graphs",
TPAMI 2018) builds a graph of ``hnsw_m`` links per node (``ef_construction``
candidates while inserting) and searches with a candidate list of
``ef_search`` (>= k; calibrated like ``nprobe``, from k up in powers of two
to ``max_ef_search``). ``reverse=True`` merges every list with its reverse
neighbours (:func:`reverse_merge`), with distances already known.

Neither index is a free lunch on features whose neighbourhoods are set by
isotropic noise in every dimension (the benchmark's synthetic distribution,
256-d: an image's 30 nearest neighbours are its ~20 same-id images plus ~10
extreme values of the noise, which no partition or graph locates cheaply).
Measured there (2-core CPU, ``docs/benchmarks.md``): at N = 20,000 (one
thread) the IVF reaches recall@30 0.95 only when it probes 23 % of the
cells, HNSW ``M = 32``, ``ef_construction = 80``, ``ef_search = 64`` 0.98
(labels' ARI against the exact kNN's 0.99 with ``reverse``, outliers
counted as one cluster), both slower than the exact search (4.7 s); at
N = 200,000 the exact kNN takes 201 s while HNSW ``M = 16`` / 40 / 32
builds and searches in 106 s at recall 0.34 (labels' ARI 0.50 against
the exact ones, outliers as singletons) and
``M = 32`` / 80 needs ``ef_search = 512`` for 0.92 (84 s + ~415 s).
Features with a lower intrinsic dimension (trained CNN embeddings) are the
case these indexes are made for; measure with
``benchmarks/pseudo_label_bench.py --compare-exact`` before trusting a
setting.

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
import logging
import math
import time
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from .ivf_join import ivf_self_join
from .knn import _put_self_first
from .knn_refine import exact_sqdist as _exact_sqdist
from .knn_refine import refine_knn, reverse_merge
from .knn_refine import sort_rows as _sort_rows

__all__ = [
    'default_nlist', 'default_max_nprobe', 'approx_knn_search',
    'recall_at_k', 'refine_knn',
    'reverse_merge'
]

INDEX_TYPES = ('ivf_flat', 'ivf_pq', 'hnsw')


#: Refinements of ``refine_iters=None`` when the search's sampled recall is
#: short of the target (a third pass added ARI 0.001 at N = 200,000).
AUTO_REFINE_ITERS = 2


def default_max_nprobe(n: int, nlist: int) -> int:
    """The largest calibrated ``nprobe``: ``nprobe · N / nlist`` candidates
    per query up to ``max(4096, N / 128)``, in ``[1, nlist]``."""
    return int(min(nlist, max(1, math.ceil(
        max(4096, n / 128) * nlist / max(n, 1)))))


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


def _build_index(faiss, index_type: str, dim: int, nlist: int,
                 pq_m: Optional[int], hnsw_m: int, ef_construction: int,
                 spherical: bool = False):
    """An untrained faiss index of ``index_type`` over ``dim``-d rows
    (``spherical``: unit centroids, probed by inner product)."""
    if index_type == 'hnsw':
        index = faiss.IndexHNSWFlat(dim, hnsw_m)
        index.hnsw.efConstruction = ef_construction
        return index
    quantizer = faiss.IndexFlatIP(dim) if spherical else faiss.IndexFlatL2(
        dim)
    if index_type == 'ivf_pq':
        if pq_m is None:
            pq_m = max(m for m in range(1, max(1, dim // 4) + 1)
                       if dim % m == 0)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, int(pq_m), 8)
    else:
        index = faiss.IndexIVFFlat(quantizer, dim, nlist)
    index.cp.spherical = spherical
    return index


def _camera_centred(x: np.ndarray, camids) -> np.ndarray:
    """``x`` minus the mean row of each row's camera (a copy)."""
    cam = np.asarray(camids.cpu() if isinstance(camids, torch.Tensor) else
                     camids).reshape(-1)
    if len(cam) != len(x):
        raise ValueError(f'camids has {len(cam)} entries for {len(x)} rows')
    out = x.copy()
    for c in np.unique(cam):
        rows = cam == c
        out[rows] -= x[rows].mean(0)
    return out


def _set_knob(index, index_type: str, value: int) -> None:
    """``nprobe`` of an IVF index, ``efSearch`` of an HNSW one."""
    if index_type == 'hnsw':
        index.hnsw.efSearch = int(value)
    else:
        index.nprobe = int(value)


@torch.no_grad()
def approx_knn_search(feats: torch.Tensor,
                      k: int,
                      index_type: str = 'ivf_flat',
                      nlist: Optional[int] = None,
                      nprobe: Optional[int] = None,
                      recall_target: float = 0.95,
                      refine_iters: Optional[int] = None,
                      refine_expand: int = 5,
                      max_nprobe: Optional[int] = None,
                      reverse: bool = False,
                      calib_queries: int = 256,
                      pca_dim: Optional[int] = None,
                      whiten: bool = False,
                      pq_m: Optional[int] = None,
                      refine_factor: int = 2,
                      train_size: Optional[int] = None,
                      kmeans_iters: int = 10,
                      spherical: bool = True,
                      hnsw_m: int = 32,
                      ef_construction: int = 80,
                      ef_search: Optional[int] = None,
                      max_ef_search: int = 512,
                      self_join: bool = True,
                      camids=None,
                      seed: int = 0,
                      info: Optional[Dict] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Approximate kNN of every row among all rows with a faiss index.

    See the module docstring for the parameter rules. On CUDA features an
    IVF index runs on the GPU when faiss has GPUs (``faiss-gpu``); else the
    ``ivf_flat`` self-join runs its products on the GPU (k-means and probes
    by faiss on the CPU) and the other IVF searches on the CPU; HNSW runs on
    the CPU.

    Args:
        feats (Tensor): Features ``(N, D)``.
        k (int): Neighbours per row, the row itself included (k <= N).
        index_type (str): ``'ivf_flat'``, ``'ivf_pq'`` or ``'hnsw'``.
        nlist (int, optional): IVF cells. Defaults to :func:`default_nlist`.
        nprobe (int, optional): Cells searched per query (IVF). Defaults to
            the calibrated value for ``recall_target``.
        recall_target (float): recall@k of the search (before the
            refinements) that the calibration of ``nprobe`` / ``ef_search``
            aims at. Defaults to 0.95.
        refine_iters (int, optional): Neighbour-of-neighbour refinements
            (:func:`refine_knn`) after the search. Defaults to None:
            :data:`AUTO_REFINE_ITERS` when the recall@k of the search on
            the sampled queries (the calibration's, or measured at the given
            ``nprobe`` / ``ef_search``) is below ``recall_target``, else 0.
        refine_expand (int): Neighbours whose lists a refinement merges
            into a row's candidates. Defaults to 5.
        max_nprobe (int, optional): The largest ``nprobe`` the calibration
            tries. Defaults to the ``nprobe`` at which a query's candidates
            ``nprobe · N / nlist`` reach ``max(4096, N / 128)``: the search
            then costs at most ~1/128 of the exact one at large N, and the
            refinements, not more cells, make up a recall short of the
            target (measured at N = 200,000 × 256-d, noise norm 1.4: the
            capped nprobe 37 and two passes give labels' ARI 0.994 against
            the exact ones in 69 s of kNN; the exact kNN takes 156 s).
        reverse (bool): Merge every list with its reverse neighbours
            (:func:`reverse_merge`, no distance recomputed); the
            refinements always do. Defaults to False.
        calib_queries (int): Sampled queries of the calibration.
        pca_dim (int, optional): Search in a PCA projection to this size.
        whiten (bool): Whiten the PCA projection (needs ``pca_dim``).
        pq_m (int, optional): PQ sub-quantisers (``D' % pq_m == 0``).
            Defaults to the largest divisor of ``D'`` <= ``D' / 4``.
        refine_factor (int): Candidates per query re-scored exactly, in
            units of k, when faiss's search ranks them in another space
            than the original (PQ, PCA, camera centring or spherical cells
            without the self-join; the self-join ranks every candidate in
            the original space).
        train_size (int, optional): k-means training rows (IVF). Defaults
            to ``min(N, 39 nlist)`` (faiss's minimum per centroid).
        kmeans_iters (int): k-means iterations of the IVF training.
            Defaults to 10 (faiss's default).
        spherical (bool): IVF cells by spherical k-means on the unit rows
            of the partitioned space, probed by inner product. L2 k-means
            on unit-norm features leaves "hub" centroids of small norm near
            the centre of the data that sit among the nearest of very many
            rows, so the few largest cells are probed by most queries
            (measured at N = 200,000, 256-d, nlist 1,789, nprobe 16: the
            product of cell sizes and probing queries summed over the cells
            was 5.0x its uniform value; unit centroids: 1.0x, and recall@30
            0.879 -> 0.904 with the self-join). Defaults to True.
        hnsw_m (int): HNSW links per node. Defaults to 32.
        ef_construction (int): HNSW candidate list of the build. Defaults
            to 80.
        ef_search (int, optional): HNSW candidate list of the search
            (>= k). Defaults to the calibrated value for ``recall_target``.
        max_ef_search (int): The largest ``ef_search`` the calibration
            tries (the search costs ~linearly in it; on noise-dominated
            features the recall target may be out of reach, see the module
            docstring). Defaults to 512.
        self_join (bool): ``ivf_flat`` without faiss-gpu: search all rows
            as a cell-by-cell self-join (:func:`ivf_self_join`: its
            products at BLAS speed, on the features' device; the cells and
            probes from faiss on the CPU). Defaults to True; False: faiss's
            ``search``.
        camids (array-like, optional): Camera id of every row. Given, the
            index is built and searched on the rows minus their camera's
            mean (a camera bias otherwise splits the cells by camera and
            hides an identity's other-camera images from its probes:
            ``benchmarks/ivf_camera_partition_probe.py``); the candidates
            are ranked in the original space (by the self-join, else
            ``refine_factor * k`` of them re-scored).
        seed (int): Seed of the training and calibration draws.
        info (dict, optional): Filled with the parameters used
            (``nlist``/``nprobe`` or ``hnsw_m``/``ef_search``),
            ``calib_recall`` (or ``sampled_recall`` at a given knob),
            ``refine_iters``, ``refine_expand``, ``fallback_rows``,
            ``build_s``, ``search_s`` (the search and the fallback) and
            ``refine_s`` (the reverse merges and the refinements).

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
    hnsw = index_type == 'hnsw'
    if hnsw and pca_dim is not None:
        raise ValueError("pca_dim is an option of the IVF indexes, not of "
                         "index_type='hnsw'")
    info = {} if info is None else info
    device = feats.device
    x = np.ascontiguousarray(feats.detach().float().cpu().numpy())
    n, dim = x.shape
    if not 0 < k <= n:
        raise ValueError(f'k={k} must be in [1, N={n}]')
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    nlist = default_nlist(n) if nlist is None else int(nlist)
    train_size = min(n, 39 * nlist) if train_size is None else min(
        n, train_size)
    # the partitioned space: optional camera centring, then PCA / whitening
    xp = x if camids is None else _camera_centred(x, camids)
    train = xp[np.sort(rng.choice(n, train_size, replace=False))] \
        if train_size < n and not hnsw else xp
    pca = None
    if pca_dim is not None:
        pca = faiss.PCAMatrix(dim, int(pca_dim), -0.5 if whiten else 0.0)
        pca.train(train)
        xs, train_s = pca.apply(xp), pca.apply(train)
    else:
        xs, train_s = xp, train
    spherical = spherical and not hnsw
    if spherical:  # the partition on the unit rows (in place on copies)
        if xs is x:
            xs = xs.copy()
        xs /= np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
        train_s = train_s / np.maximum(
            np.linalg.norm(train_s, axis=1, keepdims=True), 1e-12)
    del xp, train
    index = _build_index(faiss, index_type, xs.shape[1], nlist, pq_m,
                         hnsw_m, ef_construction, spherical)
    gpu = feats.is_cuda and faiss.get_num_gpus() > 0 and not hnsw
    if gpu:  # pragma: no cover - needs faiss-gpu
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, device.index or 0, index)
    if hasattr(index, 'cp'):
        index.cp.seed = seed
        index.cp.niter = int(kmeans_iters)
    if not hnsw:
        index.train(train_s)
    # the CPU self-join needs only the centroids: it scores the candidates
    # of the probed cells in the original space itself (no re-scoring)
    join = self_join and index_type == 'ivf_flat' and not gpu
    if not join:
        index.add(xs)
    info['build_s'] = time.perf_counter() - t0
    exact_space = join or (index_type != 'ivf_pq' and pca is None
                           and camids is None and not spherical)
    k_search = k if exact_space else min(n, refine_factor * k)
    assign = None

    def search(rows, value):
        """Candidates of ``rows`` (None: all) at nprobe / efSearch
        ``value``, ``(d, i)`` in the original space when ``exact_space``."""
        nonlocal assign
        if join:
            if rows is not None and assign is None:
                assign = index.quantizer.search(xs, 1)[1][:, 0]
            # CUDA features without faiss-gpu: the products on the GPU
            return ivf_self_join(
                xs, index, k_search, value,
                metric_rows=feats if feats.is_cuda else x, queries=rows,
                assign=assign)
        _set_knob(index, index_type, value)
        return index.search(xs if rows is None else xs[rows], k_search)

    def sampled_recall(value) -> float:
        """recall@k of the search at ``value`` on the sampled queries."""
        _, cand = search(q, value)
        if not exact_space:
            d = _exact_sqdist(x, q, np.maximum(cand, 0))
            d[cand < 0] = np.inf
            _, cand = _sort_rows(d, cand, k)
        return recall_at_k(cand, truth.numpy(), k)

    # nprobe / efSearch from the recall target on sampled queries
    knob = ef_search if hnsw else nprobe
    recall = None
    if knob is None or refine_iters is None:
        from mmreid_usl.utils.search import topk_search
        q = np.sort(rng.choice(n, min(calib_queries, n), replace=False))
        _, truth = topk_search(torch.from_numpy(x[q]), torch.from_numpy(x),
                               k, backend='auto')
    if knob is None:
        # efSearch starts at k (HNSW returns at most efSearch results)
        knob, top = (k, max(k, max_ef_search)) if hnsw else (
            1, default_max_nprobe(n, nlist) if max_nprobe is None else
            max(1, min(nlist, int(max_nprobe))))
        while True:
            recall = sampled_recall(knob)
            if recall >= recall_target or knob >= top:
                break
            knob = min(top, knob * 2)
        info['calib_recall'] = recall
        if recall < recall_target:
            from mmengine.logging import print_log
            print_log(
                f'approx_knn_search: recall@{k} {recall:.3f} at the largest '
                f"{'ef_search' if hnsw else 'nprobe'} ({knob}) is below "
                f'recall_target={recall_target}'
                + (f'; {AUTO_REFINE_ITERS} neighbour-of-neighbour '
                   'refinements follow' if refine_iters is None else ''),
                logger='current', level=logging.WARNING)
    elif hnsw and knob < k:
        raise ValueError(f'ef_search={knob} must be >= k={k}')
    if refine_iters is not None and refine_iters < 0:
        raise ValueError(f'refine_iters must be >= 0, got {refine_iters}')
    if refine_iters is None:
        if recall is None:
            recall = sampled_recall(knob)
            info['sampled_recall'] = recall
        refine_iters = AUTO_REFINE_ITERS if recall < recall_target else 0
    t1 = time.perf_counter()
    d, i = search(None, knob)
    if not exact_space:
        d = _exact_sqdist(x, np.arange(n), np.maximum(i, 0))
        d[i < 0] = np.inf
        d, i = _sort_rows(d, i, k)
    t2 = time.perf_counter()
    info['search_s'] = t2 - t1
    if reverse or refine_iters:
        d, i = reverse_merge(d, i)
    # NN-descent's join looks both ways: each pass takes the lists of a
    # row's nearest neighbours, then its reverse neighbours
    for _ in range(refine_iters):
        d, i = refine_knn(feats if feats.is_cuda else x, d, i,
                          expand=refine_expand)
        d, i = reverse_merge(d, i)
    t3 = time.perf_counter()
    info['refine_s'] = t3 - t2
    # rows the search left short of k results: exact search
    short = np.flatnonzero((i < 0).any(1) | ~np.isfinite(d).all(1))
    if len(short):
        from mmreid_usl.utils.search import topk_search
        dd, ii = topk_search(torch.from_numpy(x[short]), torch.from_numpy(x),
                             k, backend='auto')
        d[short], i[short] = dd.numpy(), ii.numpy()
    info['search_s'] += time.perf_counter() - t3
    if hnsw:
        info.update(hnsw_m=hnsw_m, ef_construction=ef_construction,
                    ef_search=int(knob))
    else:
        info.update(nlist=nlist, nprobe=int(knob), train_size=train_size,
                    kmeans_iters=int(kmeans_iters), spherical=spherical,
                    pca_dim=pca_dim, whiten=whiten)
    info.update(fallback_rows=int(len(short)), index_type=index_type,
                refine_iters=int(refine_iters), refine_expand=refine_expand,
                reverse=reverse, gpu=gpu, self_join=join,
                camera_centred=camids is not None)
    sqdist, index_t = _put_self_first(
        torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(i, dtype=np.int64)))
    return sqdist.to(device), index_t.to(device)
