# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Exact k-nearest-neighbour search behind one interface (faiss or torch)."""
from typing import Optional, Tuple

import torch
from mmengine.logging import print_log

_PRECISIONS = {'fp32': torch.float32, 'fp16': torch.float16,
               'bf16': torch.bfloat16}


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return True


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


def _knn_torch(feats: torch.Tensor, k: int, precision: str,
               chunk_size: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    n = feats.shape[0]
    x = feats.float()
    norms = (x * x).sum(1)
    mm_dtype = _PRECISIONS[precision]
    xm = x if mm_dtype == torch.float32 else x.to(mm_dtype)
    if chunk_size is None:
        # about 64 MiB of fp32 distances per chunk
        chunk_size = max(1, min(n, (1 << 24) // max(n, 1)))
    out_d = torch.empty((n, k), dtype=torch.float32, device=x.device)
    out_i = torch.empty((n, k), dtype=torch.long, device=x.device)
    for s in range(0, n, chunk_size):
        e = min(s + chunk_size, n)
        ip = torch.mm(xm[s:e], xm.t()).float()
        # ||q||^2 + ||g||^2 - 2 q.g, in place to keep one chunk buffer
        dist = ip.mul_(-2).add_(norms[None]).add_(norms[s:e, None])
        d, i = torch.topk(dist, k, dim=1, largest=False, sorted=True)
        out_d[s:e], out_i[s:e] = d, i
    return out_d, out_i


def _knn_faiss(feats: torch.Tensor,
               k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    import faiss
    x = feats.detach().float().contiguous()
    if x.is_cuda and faiss.get_num_gpus() > 0:  # pragma: no cover - GPU
        import faiss.contrib.torch_utils  # noqa: F401 (torch tensor support)
        res = faiss.StandardGpuResources()
        d, i = faiss.knn_gpu(res, x, x, k, device=x.device.index or 0)
        return d.float(), i.long()
    xn = x.cpu().numpy()
    index = faiss.IndexFlatL2(xn.shape[1])
    index.add(xn)
    d, i = index.search(xn, k)
    return (torch.from_numpy(d).to(feats.device),
            torch.from_numpy(i).long().to(feats.device))


def knn_search(feats: torch.Tensor,
               k: int,
               backend: str = 'auto',
               precision: str = 'fp32',
               chunk_size: Optional[int] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Brute-force k-nearest neighbours of every row among all rows.

    Squared Euclidean distance ``||x_i||^2 + ||x_j||^2 - 2 x_i . x_j``. With
    ``precision='fp32'`` the search is exact (up to float32 rounding); the
    reduced precisions run the matrix product in fp16/bf16 (fast on GPUs and
    on CPUs with AVX512-BF16/AMX) and return float32 distances of that
    product. The query itself is always at rank 0 (ties with exact
    duplicates are resolved in its favour).

    Backends:
        - ``'faiss'``: ``IndexFlatL2`` on CPU; ``faiss.knn_gpu`` when the
          features are on CUDA and ``faiss.get_num_gpus() > 0``. fp32 only.
        - ``'torch'``: chunked ``mm`` + ``topk`` on the features' device,
          any precision.
        - ``'auto'``: faiss when importable (GPU faiss for CUDA features,
          otherwise torch on the GPU), torch for reduced precisions.

    Args:
        feats (Tensor): Features of shape (N, D).
        k (int): Neighbours per row, the row itself included (k <= N).
        backend (str): ``'auto'``, ``'faiss'`` or ``'torch'``.
        precision (str): ``'fp32'``, ``'fp16'`` or ``'bf16'``.
        chunk_size (int, optional): Query rows per chunk of the torch backend.

    Returns:
        tuple[Tensor, Tensor]: ``sqdist`` float32 (N, k) ascending and
        ``index`` int64 (N, k), on the features' device.
    """
    if precision not in _PRECISIONS:
        raise ValueError(f'precision must be one of {list(_PRECISIONS)}')
    if backend not in ('auto', 'faiss', 'torch'):
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', "
                         f'got {backend!r}')
    n = feats.shape[0]
    if not 0 < k <= n:
        raise ValueError(f'k={k} must be in [1, N={n}]')
    if backend == 'auto':
        if precision != 'fp32' or not _faiss_available():
            backend = 'torch'
        elif feats.is_cuda:
            import faiss
            backend = 'faiss' if faiss.get_num_gpus() > 0 else 'torch'
        else:
            backend = 'faiss'
    if backend == 'faiss':
        if precision != 'fp32':
            raise ValueError("the faiss backend is fp32 only; use "
                             "backend='torch' for reduced precision")
        sqdist, index = _knn_faiss(feats, k)
    else:
        if precision == 'fp16' and not feats.is_cuda:
            print_log('fp16 matmul is slow on CPU; consider bf16',
                      logger='current')
        with torch.no_grad():
            sqdist, index = _knn_torch(feats.detach(), k, precision,
                                       chunk_size)
    return _put_self_first(sqdist, index)
