# Copyright (c) mmreid_usl contributors. All rights reserved.
"""All-pairs kNN of an IVF index over its own rows, cell by cell (a
self-join).

Pseudo-labelling searches every image among all images: the queries are the
indexed rows. faiss's ``IndexIVFFlat.search`` then scans, for each query,
the ``nprobe`` inverted lists it probes one stored vector at a time, so
every list is read from memory once per query that probes it (``N · nprobe
/ nlist`` times) and the scan is memory-bound: ~2.3 G multiply-adds per
second on the project's 2-core CPU at N = 1,000,000, nprobe 16
(``docs/benchmarks.md``). The join turns the loop around: for each cell
``c`` the queries that probe ``c``, ``Q_c``, meet the rows stored in ``c``,
``X_c``, in one matrix product,

``d(q, x) = ||q||² + ||x||² − 2 q·x`` for all ``q ∈ Q_c``, ``x ∈ X_c``,

and each query keeps the ``k`` smallest over its ``nprobe`` cells. The
candidates are exactly those of the faiss search with the same index and
``nprobe`` (the lists and the probes are faiss's own); the distances are
the same squared L2 distances up to float32 rounding of the product form
(clamped at 0). The products run at BLAS speed.

Hand-written: faiss has no batched self-join of an inverted file.
"""
from typing import Tuple

import numpy as np
import torch

__all__ = ['ivf_lists', 'ivf_self_join']


def ivf_lists(index) -> Tuple[np.ndarray, np.ndarray]:
    """The row ids stored in each inverted list of a faiss IVF index, as
    CSR arrays: ``ids[bounds[c]:bounds[c + 1]]`` are the rows of cell
    ``c``."""
    import faiss
    invlists = faiss.extract_index_ivf(index).invlists
    sizes = np.array([invlists.list_size(c) for c in range(invlists.nlist)],
                     dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    ids = np.empty(int(bounds[-1]), dtype=np.int64)
    for c in np.flatnonzero(sizes):
        ids[bounds[c]:bounds[c + 1]] = faiss.rev_swig_ptr(
            invlists.get_ids(int(c)), int(sizes[c]))
    return ids, bounds


@torch.no_grad()
def ivf_self_join(x: np.ndarray, index, k: int,
                  nprobe: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest stored rows of every row of ``x`` that the
    ``nprobe`` nearest cells of ``index`` hold.

    Args:
        x (np.ndarray): float32 ``(N, D)``: the rows added to ``index``, in
            the order they were added (row ``j`` has id ``j``).
        index: A trained faiss ``IndexIVFFlat`` holding ``x``.
        k (int): Neighbours per row.
        nprobe (int): Cells probed per row.

    Returns:
        tuple[np.ndarray, np.ndarray]: float32 squared distances ``(N, k)``
        ascending and int64 ids ``(N, k)``; ``inf`` / ``-1`` where the
        probed cells hold fewer than ``k`` rows (as faiss's search).
    """
    n = len(x)
    nprobe = int(min(nprobe, index.nlist))
    ids, bounds = ivf_lists(index)
    _, probes = index.quantizer.search(x, nprobe)  # (N, nprobe), nearest 1st
    # the queries of each cell, CSR as the lists (rows ascending in a cell)
    flat = probes.ravel()
    qorder = np.argsort(flat, kind='stable')
    qbounds = np.searchsorted(flat[qorder], np.arange(index.nlist + 1))
    qrows = qorder // nprobe
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    sq = (xt * xt).sum(1)
    best_d = torch.full((n, k), float('inf'))
    best_i = torch.full((n, k), -1, dtype=torch.long)
    for c in range(index.nlist):
        lo, hi = bounds[c], bounds[c + 1]
        qlo, qhi = qbounds[c], qbounds[c + 1]
        if lo == hi or qlo == qhi:
            continue
        mem = torch.from_numpy(ids[lo:hi])
        q = torch.from_numpy(qrows[qlo:qhi])
        d = torch.addmm(sq[mem].unsqueeze(0), xt[q], xt[mem].T, alpha=-2)
        d.add_(sq[q].unsqueeze(1)).clamp_(min=0)
        cd, cj = d.topk(min(k, hi - lo), dim=1, largest=False)
        md = torch.cat([best_d[q], cd], 1)
        mi = torch.cat([best_i[q], mem[cj]], 1)
        td, tj = md.topk(k, dim=1, largest=False)
        best_d[q] = td
        best_i[q] = mi.gather(1, tj)
    return best_d.numpy(), best_i.numpy()
