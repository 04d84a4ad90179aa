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

and each query keeps the ``k`` smallest over its ``nprobe`` cells: the
``k`` best of every (query, cell) product go to the query's slot for that
cell in a ``(Q, nprobe, k)`` buffer, and one top-k per query over its
``nprobe · k`` entries ends the search (no merge per cell). With the rows
added to the index and no ``metric_rows``, the candidates are exactly those
of the faiss search with the same index and ``nprobe`` (the lists and the
probes are faiss's own); the distances are the same squared L2 distances up
to float32 rounding of the product form (clamped at 0). The products run at
BLAS speed.

The partition and the metric can differ: the cells and probes come from
``x`` (e.g. camera-centred unit rows under spherical k-means), the
distances from ``metric_rows`` (the original features), so every candidate
of the probed cells is ranked exactly in the original space and no
re-scoring of a short list is needed. An empty index needs only its
centroids: each row's cell is its nearest centroid, what ``index.add``
would store.

Hand-written: faiss has no batched self-join of an inverted file.
"""
from typing import Optional, Tuple

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


def _csr(cells: np.ndarray, nlist: int) -> Tuple[np.ndarray, np.ndarray]:
    """Rows grouped by cell, ascending in a cell, as CSR arrays."""
    order = np.argsort(cells, kind='stable')
    return order, np.searchsorted(cells[order], np.arange(nlist + 1))


@torch.no_grad()
def ivf_self_join(x: np.ndarray,
                  index,
                  k: int,
                  nprobe: int,
                  metric_rows: Optional[np.ndarray] = None,
                  queries: Optional[np.ndarray] = None,
                  assign: Optional[np.ndarray] = None,
                  max_buffer: int = 1 << 26
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest stored rows of every row of ``x`` (or of the rows
    ``queries``) that the ``nprobe`` nearest cells of ``index`` hold.

    Args:
        x (np.ndarray): float32 ``(N, D)``: the rows in the partitioned
            space (row ``j`` has id ``j``).
        index: A trained faiss ``IndexIVFFlat`` over ``D``-d rows. If it
            holds ``x`` (added in order), its lists are the cells; if it is
            empty, each row's cell is its nearest centroid (``assign``, or
            the quantizer's assignment: what ``index.add`` would store).
        k (int): Neighbours per row.
        nprobe (int): Cells probed per row.
        metric_rows (np.ndarray | Tensor, optional): ``(N, D')``: the same
            rows in the space whose distances rank the candidates (the
            original features when ``x`` is a projection or camera-centred
            copy of them). A tensor keeps its device: on a CUDA device the
            products, top-k and buffer run there (faiss-gpu not needed).
            Defaults to ``x``: faiss's own search.
        queries (np.ndarray, optional): Row ids to search for. Defaults to
            all rows.
        assign (np.ndarray, optional): ``(N,)`` nearest centroid of every
            row, for an empty ``index`` (computed when not given).
        max_buffer (int): Candidate entries held at once (``nprobe · k``
            per query, float32 + int32 each); more queries are searched in
            blocks, each one pass over the cells. Defaults to 2^26
            (512 MiB).

    Returns:
        tuple[np.ndarray, np.ndarray]: float32 squared distances
        ``(Q, k)`` ascending and int64 ids ``(Q, k)``; ``inf`` / ``-1``
        where the probed cells hold fewer than ``k`` rows (as faiss's
        search).
    """
    nlist = index.nlist
    nprobe = int(min(nprobe, nlist))
    qids = np.arange(len(x)) if queries is None else np.asarray(
        queries, dtype=np.int64)
    # (Q, nprobe), nearest first
    _, probes = index.quantizer.search(
        x if queries is None else np.ascontiguousarray(x[qids]), nprobe)
    if index.ntotal:
        ids, bounds = ivf_lists(index)
    else:
        if assign is None:
            assign = probes[:, 0] if queries is None else \
                index.quantizer.search(x, 1)[1][:, 0]
        ids, bounds = _csr(np.asarray(assign), nlist)
    # the queries of each cell, CSR as the lists (queries ascending), and
    # the probe slot (0 .. nprobe-1) each (query, cell) pair fills
    qorder, qbounds = _csr(probes.ravel(), nlist)
    qrows, qslots = np.divmod(qorder, nprobe)
    if isinstance(metric_rows, torch.Tensor):  # e.g. on a CUDA device
        xm = metric_rows.detach().float()
    else:
        xm = torch.from_numpy(np.ascontiguousarray(
            x if metric_rows is None else metric_rows, dtype=np.float32))
    dev = xm.device
    sq = (xm * xm).sum(1)
    qids_t = torch.from_numpy(qids).to(dev)
    qrows_t = torch.from_numpy(qrows).to(dev)
    qslots_t = torch.from_numpy(qslots).to(dev)
    num_q = len(qids)
    # the stored rows in cell order, so that a cell's rows are a slice (a
    # copy of all rows, worth it when each row is read many times; a few
    # queries, e.g. a recall calibration, gather the probed cells instead)
    ids_t = torch.from_numpy(ids).to(dev)
    contiguous = num_q * nprobe >= len(ids)
    if contiguous:
        cell_x, cell_sq = xm[ids_t], sq[ids_t]
    out_d = np.empty((num_q, k), dtype=np.float32)
    out_i = np.empty((num_q, k), dtype=np.int64)
    # each query's candidates: the k best of each probed cell, in its slot,
    # as positions in cell order; queries in blocks that bound the buffer
    # to ~max_buffer entries
    block = max(1, min(num_q, max_buffer // (nprobe * k)))
    for b0 in range(0, num_q, block):
        b1 = min(num_q, b0 + block)
        buf_d = torch.full(((b1 - b0) * nprobe, k), float('inf'), device=dev)
        buf_p = torch.full(((b1 - b0) * nprobe, k), -1, dtype=torch.int32,
                           device=dev)
        for c in range(nlist):
            lo, hi = int(bounds[c]), int(bounds[c + 1])
            if lo == hi:
                continue
            qlo, qhi = int(qbounds[c]), int(qbounds[c + 1])
            if block < num_q:  # this block's queries of the cell
                qlo, qhi = (qlo + int(i) for i in np.searchsorted(
                    qrows[qlo:qhi], [b0, b1]))
            if qlo == qhi:
                continue
            q = qrows_t[qlo:qhi]
            rows = qids_t[q]
            if contiguous:
                mx, msq = cell_x[lo:hi], cell_sq[lo:hi]
            else:
                mem = ids_t[lo:hi]
                mx, msq = xm[mem], sq[mem]
            d = torch.addmm(msq.unsqueeze(0), xm[rows], mx.T, alpha=-2)
            d.add_(sq[rows].unsqueeze(1)).clamp_(min=0)
            kk = min(k, hi - lo)
            cd, cj = d.topk(kk, dim=1, largest=False)
            # buffer row of each (query, probe slot)
            dest = (q - b0) * nprobe + qslots_t[qlo:qhi]
            buf_d[:, :kk].index_copy_(0, dest, cd)
            buf_p[:, :kk].index_copy_(0, dest, cj.int().add_(lo))
        bd, bj = buf_d.view(b1 - b0, -1).topk(k, dim=1, largest=False)
        pos = buf_p.view(b1 - b0, -1).gather(1, bj).cpu().numpy()
        out_d[b0:b1] = bd.cpu().numpy()
        out_i[b0:b1] = np.where(pos >= 0, ids[np.maximum(pos, 0)], -1)
    return out_d, out_i
