# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Exact top-k search over feature pairs, one helper for the package.

Every nearest-neighbour search of the package goes through
:func:`topk_search` (the k-NN of the clustering distances, the distance to
the nearest source image, the gallery search of the inferencer, the rank
lists of the analysis tools) and every top-k over a distance matrix that is
computed chunk by chunk (the re-ranked gallery search) through
:func:`topk_rows`, so the backend choice, the chunk size and the order of
the results are decided in one place.
"""
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

#: Pairwise scores :func:`topk_search` computes.
METRICS = ('sqeuclidean', 'inner_product')
#: Search backends.
BACKENDS = ('auto', 'faiss', 'torch')
#: Matrix-product precisions of the torch backend.
PRECISIONS = {
    'fp32': torch.float32,
    'fp16': torch.float16,
    'bf16': torch.bfloat16
}
#: Elements of one chunk of a score matrix (64 MiB of float32).
CHUNK_ELEMS = 1 << 24

#: ``exclude(s, e)``: bool ``(e - s, N)``, True for the pairs to leave out.
ExcludeFn = Callable[[int, int], torch.Tensor]


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return True


def rows_per_chunk(num_cols: int, max_elems: int = CHUNK_ELEMS) -> int:
    """Rows of a chunk of a ``(*, num_cols)`` matrix (at least one)."""
    return max(1, max_elems // max(num_cols, 1))


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ValueError("backend must be 'auto', 'faiss' or 'torch', got "
                         f'{backend!r}')


def resolve_backend(backend: str,
                    query: torch.Tensor,
                    precision: str = 'fp32',
                    exact_order: bool = False) -> str:
    """The backend a search runs on: ``'faiss'`` or ``'torch'``.

    ``'auto'`` takes faiss when it is importable and the search is in fp32
    (on CUDA queries only when faiss has GPUs), else torch. Searches that
    exclude pairs or need the stable order (``exact_order``) run on torch.

    Raises:
        ValueError: An unknown backend, or faiss asked for what only torch
            does (reduced precision, excluded pairs, the stable order).
        ImportError: ``backend='faiss'`` without faiss.
    """
    check_backend(backend)
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {list(PRECISIONS)}')
    if backend == 'auto':
        if exact_order or precision != 'fp32' or not faiss_available():
            return 'torch'
        if query.is_cuda:
            import faiss
            return 'faiss' if faiss.get_num_gpus() > 0 else 'torch'
        return 'faiss'
    if backend == 'faiss':
        if precision != 'fp32':
            raise ValueError('the faiss backend is fp32 only; use '
                             "backend='torch' for reduced precision")
        if exact_order:
            raise ValueError("excluded pairs and stable=True need "
                             "backend='torch' (or 'auto')")
        if not faiss_available():
            raise ImportError("backend='faiss' needs faiss "
                              '(pip install faiss-cpu).')
    return backend


def build_faiss_index(base: torch.Tensor, metric: str = 'sqeuclidean'):
    """An exact (flat) CPU faiss index of ``base`` for :func:`topk_search`.

    ``IndexFlatL2`` (squared Euclidean) or ``IndexFlatIP`` (inner product).
    Build it once to search the same base many times.
    """
    import faiss
    if metric not in METRICS:
        raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
    xb = np.ascontiguousarray(base.detach().float().cpu().numpy())
    flat = faiss.IndexFlatL2 if metric == 'sqeuclidean' else \
        faiss.IndexFlatIP
    index = flat(xb.shape[1])
    index.add(xb)
    return index


def _faiss_search(query: torch.Tensor, base: torch.Tensor, k: int,
                  metric: str,
                  index) -> Tuple[torch.Tensor, torch.Tensor]:
    import faiss
    if index is None and query.is_cuda and faiss.get_num_gpus() > 0:
        # pragma: no cover - needs faiss with GPUs
        import faiss.contrib.torch_utils  # noqa: F401 (torch tensors)
        res = faiss.StandardGpuResources()
        kind = faiss.METRIC_L2 if metric == 'sqeuclidean' else \
            faiss.METRIC_INNER_PRODUCT
        d, i = faiss.knn_gpu(res,
                             query.float().contiguous(),
                             base.float().to(query.device).contiguous(),
                             k,
                             metric=kind,
                             device=query.device.index or 0)
        return d.float(), i.long()
    if index is None:
        index = build_faiss_index(base, metric)
    d, i = index.search(
        np.ascontiguousarray(query.float().cpu().numpy()), k)
    return (torch.from_numpy(d).to(query.device),
            torch.from_numpy(i).long().to(query.device))


@torch.no_grad()
def topk_rows(rows: Callable[[int, int], torch.Tensor],
              num_rows: int,
              k: int,
              largest: bool = False,
              chunk_size: Optional[int] = None,
              exclude: Optional[ExcludeFn] = None,
              stable: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` smallest (or largest) entries of every row of a matrix.

    The matrix is produced ``chunk_size`` rows at a time by ``rows(s, e)``
    (a new ``(e - s, N)`` tensor that may be modified), so only one chunk
    exists at a time.

    Args:
        rows (Callable): ``rows(s, e)`` -> the rows ``s:e``.
        num_rows (int): Rows of the matrix.
        k (int): Entries kept per row, at most ``N`` (the caller clamps).
        largest (bool): Largest first (similarities) instead of smallest
            first (distances). Defaults to False.
        chunk_size (int, optional): Rows per call of ``rows``. Defaults to
            all rows at once.
        exclude (Callable, optional): ``exclude(s, e)`` -> bool ``(e - s,
            N)``, True for the entries to leave out. They are ranked last
            and come back with index ``-1`` (value ``inf``, or ``-inf`` when
            ``largest``) when a row has fewer than ``k`` others.
        stable (bool): Ties in ascending column order (a stable sort of the
            whole row). Otherwise ``torch.topk``'s order, which may put tied
            entries in any order. Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: ``values`` ``(num_rows, k)``, sorted, and
        int64 ``indices`` ``(num_rows, k)``, on the device of the rows.
    """
    fill = -float('inf') if largest else float('inf')
    chunk_size = chunk_size or max(num_rows, 1)
    values, indices = [], []
    for s in range(0, num_rows, chunk_size):
        e = min(s + chunk_size, num_rows)
        chunk = rows(s, e)
        if exclude is not None:
            chunk = chunk.masked_fill(exclude(s, e), fill)
        if stable:
            val, idx = torch.sort(chunk, dim=1, descending=largest,
                                  stable=True)
            val, idx = val[:, :k], idx[:, :k]
        else:
            val, idx = torch.topk(chunk, k, dim=1, largest=largest,
                                  sorted=True)
        if exclude is not None:
            idx = idx.masked_fill(val == fill, -1)
        values.append(val)
        indices.append(idx)
    if not values:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.long)
    return torch.cat(values), torch.cat(indices)


@torch.no_grad()
def topk_search(query: torch.Tensor,
                base: torch.Tensor,
                k: int,
                metric: str = 'sqeuclidean',
                backend: str = 'auto',
                precision: str = 'fp32',
                chunk_size: Optional[int] = None,
                exclude: Optional[ExcludeFn] = None,
                stable: bool = False,
                faiss_index=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest ``base`` rows of every ``query`` row (exact).

    Metrics:

    - ``'sqeuclidean'``: :math:`\\|q - b\\|^2`, computed as
      :math:`-2\\, q \\cdot b + \\|b\\|^2 + \\|q\\|^2` in float32 (not clamped
      at 0), smallest first;
    - ``'inner_product'``: :math:`q \\cdot b` (the cosine similarity of unit
      vectors), largest first.

    Backends (see :func:`resolve_backend`):

    - ``'faiss'``: ``IndexFlatL2`` / ``IndexFlatIP`` on CPU (or
      ``faiss_index``), ``faiss.knn_gpu`` for CUDA queries when faiss has
      GPUs; fp32 only.
    - ``'torch'``: chunked ``torch.mm`` + ``torch.topk`` on the queries'
      device, about ``2**24`` scores per chunk; any precision (fp16 / bf16
      run the product in that precision and return float32 values).
    - ``'auto'``: faiss when importable (fp32, no ``exclude`` /
      ``stable``), else torch.

    Ties: with ``stable=True`` tied entries come in ascending base order
    (torch only); otherwise in the backend's order.

    Args:
        query (Tensor): ``(Q, D)`` queries.
        base (Tensor): ``(N, D)`` searched rows, ``N >= 1``.
        k (int): Neighbours per query, ``>= 1``; more than ``N`` gives all
            ``N``.
        metric (str): ``'sqeuclidean'`` or ``'inner_product'``.
        backend (str): ``'auto'``, ``'faiss'`` or ``'torch'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'`` (torch).
        chunk_size (int, optional): Queries per torch chunk. Defaults to
            :func:`rows_per_chunk` of ``N``.
        exclude (Callable, optional): ``exclude(s, e)`` -> bool ``(e - s,
            N)`` of pairs to leave out (see :func:`topk_rows`; torch).
        stable (bool): Ties in ascending base order (torch). Defaults to
            False.
        faiss_index (optional): A :func:`build_faiss_index` of ``base``
            (same metric) to reuse.

    Returns:
        tuple[Tensor, Tensor]: float32 ``values`` ``(Q, min(k, N))``, best
        first, and int64 ``indices`` into ``base``, on the queries' device.

    Raises:
        ValueError: Bad shapes, ``k < 1``, unknown metric / backend /
            precision.
    """
    if metric not in METRICS:
        raise ValueError(f'metric must be one of {METRICS}, got {metric!r}')
    if query.ndim != 2 or base.ndim != 2 or query.shape[1] != base.shape[1]:
        raise ValueError('topk_search: query (Q, D) and base (N, D) must '
                         f'have the same D, got {tuple(query.shape)} and '
                         f'{tuple(base.shape)}')
    if base.shape[0] == 0:
        raise ValueError('topk_search: the base is empty')
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    k = min(k, base.shape[0])
    exact_order = exclude is not None or stable
    backend = resolve_backend(backend, query, precision, exact_order)
    if query.shape[0] == 0:
        return (torch.zeros(0, k, device=query.device),
                torch.zeros(0, k, dtype=torch.long, device=query.device))
    if backend == 'faiss':
        return _faiss_search(query.detach(), base.detach(), k, metric,
                             faiss_index)
    if precision == 'fp16' and not query.is_cuda:
        print_log('fp16 matmul is slow on CPU; consider bf16',
                  logger='current')
    q = query.detach().float()
    b = base.detach().float().to(q.device)
    mm_dtype = PRECISIONS[precision]
    qm = q if mm_dtype == torch.float32 else q.to(mm_dtype)
    bm = b if mm_dtype == torch.float32 else b.to(mm_dtype)
    if metric == 'sqeuclidean':
        q_norms, b_norms = (q * q).sum(1), (b * b).sum(1)

    def scores(s: int, e: int) -> torch.Tensor:
        prod = torch.mm(qm[s:e], bm.t()).float()
        if metric == 'inner_product':
            return prod
        # ||q||^2 + ||b||^2 - 2 q.b, in place to keep one chunk buffer
        return prod.mul_(-2).add_(b_norms[None]).add_(q_norms[s:e, None])

    return topk_rows(scores,
                     q.shape[0],
                     k,
                     largest=metric == 'inner_product',
                     chunk_size=chunk_size or rows_per_chunk(b.shape[0]),
                     exclude=exclude,
                     stable=stable)


__all__ = [
    'BACKENDS', 'METRICS', 'PRECISIONS', 'build_faiss_index',
    'check_backend', 'faiss_available', 'resolve_backend', 'rows_per_chunk',
    'topk_rows', 'topk_search'
]
