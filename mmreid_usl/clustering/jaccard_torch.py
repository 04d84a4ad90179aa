# Copyright (c) mmreid_usl contributors. All rights reserved.
r"""The sparse k-reciprocal Jaccard distance in torch, on the kNN's device.

The same computation as the numpy/scipy path of :class:`JaccardDistance`
(Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017, https://arxiv.org/abs/1701.08398, in the variant of
Cluster Contrast / ICE), written with torch index and segment operations
(``torch.unique``, ``torch.searchsorted``, ``repeat_interleave``,
``index_add_``, ``scatter_reduce_``) so that it runs where the kNN tensors
are, a GPU included, without a Python loop over rows:

.. math::
    R(i, k) = \{j \in N(i, k) : i \in N(j, k)\}, \qquad
    E(i) = R(i, k_1) \cup \bigcup_{c \in R(i, k_1),\,
    |R(c, k_1/2) \cap R(i, k_1)| > \frac{2}{3}|R(c, k_1/2)|} R(c, k_1/2),

.. math::
    V_{ij} = \frac{e^{-d^2_{ij}}}{\sum_{j' \in E(i)} e^{-d^2_{ij'}}}
    \ (j \in E(i)), \qquad
    V_i \leftarrow \frac{1}{k_2} \sum_{j \in N(i, k_2)} V_j, \qquad
    d_J(i, j) = \max\Big(0, 1 - \frac{m_{ij}}{2 - m_{ij}}\Big),\
    m_{ij} = \sum_k \min(V_{ik}, V_{jk}),

with :math:`N(i, k)` the first k entries of i's kNN list (``R(i, k1/2)``
from ``round(k1/2) + 1`` entries) and :math:`d^2_{ij} = 2 - 2 x_i \cdot
x_j`. V and m are float64, :math:`d_J` float32, as in the CPU path.

Why hand-written: no library computes a k-reciprocal encoding or the
(+, min) sparse product :math:`m` on a GPU (torch.sparse, cuSPARSE, PyG
and faiss offer (+, ×) products only; the re-ranking of the paper
repositories is dense N×N). Sparse sets are kept as sorted int64 keys
``i * N + j`` (row-major COO); membership is a ``searchsorted`` and every
sparse sum a ``unique`` + ``index_add_``.

Memory, on the device: ``O(N·k1)`` for the kNN lists and reciprocal sets,
a few arrays of ``nnz(V)`` (``V`` holds ``O(N·k2·|E|)`` entries), about 60
bytes per expanded triple of one chunk (at most ``max_chunk_elems`` triples,
or one row's if a row alone has more), ``3 · 4 · step · D`` bytes per
gathered feature block (``step = 2**24 / D`` pairs) and, at the end, about
40 bytes per stored pair (2x the pairs of the upper triangle while they are
sorted), bounded by the pair budget ``max_pairs``. The stored pairs are
the CPU path's; the values agree to float32 rounding (torch's ``exp``,
dot products and, on a GPU, float64 summation order differ in the last
bits from numpy's).
"""
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .jaccard_budget import PAIR_SAMPLE_ROWS, PairBudgetError

#: Values of ``JaccardDistance(jaccard_device=...)``: ``'cpu'`` the
#: numpy/scipy path; ``'auto'`` this module when the kNN tensors are on a
#: CUDA device, the numpy/scipy path otherwise; ``'cuda'`` this module on
#: the GPU (tensors moved there); ``'torch'`` this module on the kNN
#: tensors' device, the CPU included (tests, benchmarks).
JACCARD_DEVICES = ('auto', 'cpu', 'cuda', 'torch')


def resolve_jaccard_device(option: str,
                           index: Tensor) -> Optional[torch.device]:
    """The device of the torch path for ``option``, None for the CPU path.

    Args:
        option (str): One of :data:`JACCARD_DEVICES`.
        index (Tensor): The kNN indices (their device decides ``'auto'``).

    Returns:
        torch.device | None: Where the torch path runs (None: numpy/scipy).

    Raises:
        RuntimeError: ``'cuda'`` without a CUDA device.
    """
    if option == 'cpu' or (option == 'auto' and not index.is_cuda):
        return None
    if option in ('auto', 'torch'):
        return index.device
    if index.is_cuda:
        return index.device
    if not torch.cuda.is_available():
        raise RuntimeError("JaccardDistance(jaccard_device='cuda'): no CUDA "
                           "device is available; use 'auto' (the CPU path "
                           "here) or 'cpu'.")
    return torch.device('cuda')


class _Rows(NamedTuple):
    """A sparse N×N matrix row-major: ``crow`` (N+1), ``rows``, ``cols``,
    ``vals`` per entry (columns sorted in every row); ``ptr`` is ``crow``
    on the host, for slicing chunks."""
    crow: Tensor
    rows: Tensor
    cols: Tensor
    vals: Optional[Tensor]
    ptr: np.ndarray


def _ragged_arange(starts: Tensor, lens: Tensor) -> Tensor:
    """Concatenation of ``arange(s, s + l)`` for every (s, l)."""
    total = int(lens.sum())
    offsets = torch.cumsum(lens, 0) - lens
    return torch.arange(total, device=lens.device) + torch.repeat_interleave(
        starts - offsets, lens, output_size=total)


def _member(table: Tensor, keys: Tensor) -> Tuple[Tensor, Tensor]:
    """Position in the sorted ``table`` and whether each key is there."""
    pos = torch.searchsorted(table, keys).clamp_(max=max(len(table) - 1, 0))
    if len(table) == 0:
        return pos, torch.zeros_like(keys, dtype=torch.bool)
    return pos, table[pos] == keys


def _row_ranges(cost: Tensor, budget: int) -> List[Tuple[int, int]]:
    """Consecutive row ranges whose summed ``cost`` stays within ``budget``
    (a range holds at least one row)."""
    cum = np.concatenate([[0], np.cumsum(cost.cpu().numpy())])
    ranges, r0, n = [], 0, len(cost)
    while r0 < n:
        r1 = int(np.searchsorted(cum, cum[r0] + budget, side='right')) - 1
        r1 = min(max(r1, r0 + 1), n)
        ranges.append((r0, r1))
        r0 = r1
    return ranges


def _rows_of(keys: Tensor, n: int, vals: Optional[Tensor] = None) -> _Rows:
    """:class:`_Rows` from sorted unique keys ``i * n + j``."""
    rows = torch.div(keys, n, rounding_mode='floor')
    crow = torch.zeros(n + 1, dtype=torch.int64, device=keys.device)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return _Rows(crow, rows, keys - rows * n, vals, crow.cpu().numpy())


def _reciprocal_keys(index: Tensor, length: int) -> Tensor:
    """Sorted keys of ``R``: j in the first ``length`` entries of i's list
    and i in the first ``length`` of j's."""
    n = index.shape[0]
    cols = index[:, :length]
    rows = torch.arange(n, device=index.device).unsqueeze(1).expand_as(cols)
    fwd = (rows * n + cols).reshape(-1)
    _, hit = _member(torch.unique(fwd), (cols * n + rows).reshape(-1))
    return torch.unique(fwd[hit])


def _expanded_keys(index: Tensor, k1_param: int, budget: int) -> Tensor:
    """Steps 2-3: sorted keys of ``E(i)``, a chunk of rows at a time (cost
    ``Σ_{c ∈ R(i, k1)} |R(c, k1/2)|`` per row)."""
    n, k1 = index.shape
    r1 = _reciprocal_keys(index, k1)
    rh = _rows_of(_reciprocal_keys(
        index, min(int(np.around(k1_param / 2)) + 1, k1)), n)
    half = rh.crow[1:] - rh.crow[:-1]
    big = _rows_of(r1, n)
    cost = half[big.cols]
    parts = []
    for r0, r_end in _row_ranges(
            torch.zeros(n, dtype=torch.int64, device=index.device).index_add_(
                0, big.rows, cost), budget):
        e0, e1 = int(big.ptr[r0]), int(big.ptr[r_end])
        lens = cost[e0:e1]
        src = _ragged_arange(rh.crow[big.cols[e0:e1]], lens)
        pair = torch.repeat_interleave(big.rows[e0:e1], lens) * n + \
            rh.cols[src]
        # |R(c, k1/2) ∩ R(i, k1)|: j ∈ R(c, k1/2) (symmetric) found in R1
        _, hit = _member(r1, pair)
        entry = torch.repeat_interleave(
            torch.arange(e1 - e0, device=index.device), lens)
        overlap = torch.zeros(e1 - e0, dtype=torch.int64,
                              device=index.device).index_add_(
                                  0, entry, hit.long())
        # the CPU path's float64 test, bit for bit
        keep = overlap.double() > 2 / 3 * half[big.cols[e0:e1]].double()
        parts.append(torch.unique(torch.cat([r1[e0:e1], pair[keep[entry]]])))
    return torch.cat(parts)


def _pair_sqdist(x: Tensor, sqdist: Optional[Tensor], index: Tensor,
                 rows: Tensor, cols: Tensor) -> Tensor:
    """``2 - 2 x_i·x_j`` (float64) of the given pairs: from the fp32 kNN
    distances where the pair is in i's or j's list (``sqdist`` given), the
    others gathered and multiplied in blocks."""
    n, k1 = index.shape
    norms = (x * x).sum(1).double()
    ip = torch.empty(len(rows), dtype=torch.float64, device=x.device)
    todo = torch.ones(len(rows), dtype=torch.bool, device=x.device)
    if sqdist is not None:
        keys = (torch.arange(n, device=x.device).unsqueeze(1) * n +
                index).reshape(-1)
        table, order = torch.sort(keys, stable=True)
        knn_d = sqdist[:, :k1].double().reshape(-1)[order]
        for query in (rows * n + cols, cols * n + rows):
            sub = torch.nonzero(todo).flatten()
            pos, hit = _member(table, query[sub])
            found = sub[hit]
            ip[found] = (norms[rows[found]] + norms[cols[found]] -
                         knn_d[pos[hit]]) / 2
            todo[found] = False
    miss = torch.nonzero(todo).flatten()
    step = max(1, (1 << 24) // max(x.shape[1], 1))
    for s in range(0, len(miss), step):
        m = miss[s:s + step]
        # elementwise, not einsum/bmm: never TF32 on a GPU
        ip[m] = (x[rows[m]] * x[cols[m]]).sum(1).double()
    return 2.0 - 2.0 * ip


def _softmax_rows(rows: Tensor, d2: Tensor, n: int) -> Tensor:
    """Step 4: ``softmax_{j ∈ E(i)}(-d2_ij)`` per row (row-minimum shift)."""
    low = torch.full((n, ), float('inf'), dtype=d2.dtype, device=d2.device)
    low.scatter_reduce_(0, rows, d2, 'amin')
    w = torch.exp(-(d2 - low[rows]))
    total = torch.zeros(n, dtype=d2.dtype, device=d2.device)
    return w / total.index_add_(0, rows, w)[rows]


def _query_expand(v: _Rows, index: Tensor, k2: int, budget: int) -> _Rows:
    """Step 5: ``V_i <- (1/k2) Σ_{t < k2} V_{index[i, t]}`` (float64)."""
    n = index.shape[0]
    if k2 <= 1:
        return v
    length = v.crow[1:] - v.crow[:-1]
    nbrs = index[:, :k2]
    keys, vals = [], []
    for r0, r1 in _row_ranges(length[nbrs].sum(1), budget):
        j = nbrs[r0:r1].reshape(-1)
        lens = length[j]
        src = _ragged_arange(v.crow[j], lens)
        i = torch.arange(r0, r1, device=index.device).repeat_interleave(k2)
        uniq, inv = torch.unique(
            torch.repeat_interleave(i, lens) * n + v.cols[src],
            return_inverse=True)
        keys.append(uniq)
        vals.append(
            torch.zeros(len(uniq), dtype=torch.float64,
                        device=index.device).index_add_(
                            0, inv, v.vals[src] * (1.0 / k2)))
    return _rows_of(torch.cat(keys), n, torch.cat(vals))


class _Columns(NamedTuple):
    """V column-major: ``ptr`` (N+1), ``rows``/``vals`` per entry (rows
    ascending in a column), ``pos``: CSC position of each CSR entry."""
    ptr: Tensor
    rows: Tensor
    vals: Tensor
    pos: Tensor


def _columns(v: _Rows) -> _Columns:
    n = len(v.crow) - 1
    perm = torch.sort(v.cols, stable=True)[1]
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=v.cols.device)
    ptr[1:] = torch.cumsum(torch.bincount(v.cols, minlength=n), 0)
    pos = torch.empty_like(perm)
    pos[perm] = torch.arange(len(perm), device=perm.device)
    return _Columns(ptr, v.rows[perm], v.vals[perm], pos)


def _overlaps(v: _Rows, csc: _Columns, rows: Tensor,
              upper: bool) -> Tuple[Tensor, Tensor]:
    """Sorted keys ``i * N + j`` and ``m_ij`` of the pairs with ``i`` in
    ``rows`` sharing a column (every j, or ``j >= i`` when ``upper``)."""
    n = len(v.crow) - 1
    starts = v.crow[rows]
    lens = v.crow[rows + 1] - starts
    ent = _ragged_arange(starts, lens)
    first = csc.pos[ent] if upper else csc.ptr[v.cols[ent]]
    counts = csc.ptr[v.cols[ent] + 1] - first
    src = _ragged_arange(first, counts)
    rep = torch.repeat_interleave(ent, counts)
    uniq, inv = torch.unique(v.rows[rep] * n + csc.rows[src],
                             return_inverse=True)
    m = torch.zeros(len(uniq), dtype=torch.float64, device=rows.device)
    return uniq, m.index_add_(0, inv,
                              torch.minimum(v.vals[rep], csc.vals[src]))


def _overlap_distance(m: Tensor) -> Tensor:
    """``max(0, 1 - m/(2 - m))`` in float32 (as the CPU path)."""
    m32 = m.float()
    return (1 - m32 / (2 - m32)).clamp_(min=0)


def _symmetric_csr(rows: Tensor, cols: Tensor, vals: Tensor,
                   n: int) -> sp.csr_matrix:
    """The full symmetric scipy CSR (columns sorted, explicit zeros kept)
    from the upper triangle, sorted on the device."""
    strict = cols > rows
    r = torch.cat([rows, cols[strict]])
    c = torch.cat([cols, rows[strict]])
    d = torch.cat([vals, vals[strict]])
    order = torch.argsort(r * n + c)
    indptr = np.concatenate(
        [[0], np.cumsum(torch.bincount(r, minlength=n).cpu().numpy())])
    return sp.csr_matrix((d[order].cpu().numpy(),
                          c[order].to(torch.int32).cpu().numpy(), indptr),
                         shape=(n, n))


class TorchJaccard:
    """The torch path of :class:`JaccardDistance` (a mixin: ``self.k1``,
    ``self.k2``, ``self.knn_precision``, ``self.max_chunk_elems`` and
    ``self.max_pairs`` are the distance's; the budget message is
    :class:`PairBudget`'s)."""

    def _from_knn_torch(self, feats: Tensor, sqdist: Optional[Tensor],
                        index: Tensor, max_distance: float,
                        device: torch.device) -> sp.csr_matrix:
        """:meth:`JaccardDistance.from_knn` on ``device`` (see the module
        docstring for the steps and the memory bound).

        Returns:
            scipy.sparse.csr_matrix: N×N float32, the pairs with ``d_J <
            max_distance`` (diagonal, explicit zeros), columns sorted; the
            stored entries of the CPU path, values to float32 rounding.
        """
        x = feats.detach().float().to(device)
        n = x.shape[0]
        k1 = min(self.k1, n)
        idx = index[:, :k1].to(device=device, dtype=torch.int64)
        if sqdist is not None and self.knn_precision == 'fp32':
            sqdist = sqdist.to(device)
        else:  # reduced-precision kNN: every d² recomputed in fp32
            sqdist = None
        budget = self.max_chunk_elems
        with torch.no_grad():
            e = _rows_of(_expanded_keys(idx, self.k1, budget), n)
            w = _softmax_rows(e.rows,
                              _pair_sqdist(x, sqdist, idx, e.rows, e.cols), n)
            v = _query_expand(e._replace(vals=w), idx, min(self.k2, k1),
                              budget)
            del e, w
            csc = _columns(v)
            self._check_pair_budget_torch(v, csc, feats, idx, max_distance)
            return self._jaccard_torch(v, csc, max_distance)

    def _check_pair_budget_torch(self, v: _Rows, csc: _Columns, feats: Tensor,
                                 index: Tensor, max_distance: float) -> None:
        """:meth:`PairBudget.check_pair_budget` (same sampled rows, same
        estimate) before any pair is stored.

        Raises:
            PairBudgetError: The estimate exceeds ``max_pairs``.
        """
        n = len(v.crow) - 1
        if self.max_pairs is None or n * n <= self.max_pairs:
            return
        sample = np.arange(n) if n <= PAIR_SAMPLE_ROWS else np.sort(
            np.random.default_rng(0).choice(
                n, PAIR_SAMPLE_ROWS, replace=False))
        sample_t = torch.from_numpy(sample).to(v.crow.device)
        length = torch.zeros(n, dtype=torch.int64, device=v.crow.device)
        length.index_add_(0, v.rows, csc.ptr[v.cols + 1] - csc.ptr[v.cols])
        total = 0
        for s0, s1 in _row_ranges(length[sample_t], self.max_chunk_elems):
            _, m = _overlaps(v, csc, sample_t[s0:s1], upper=False)
            total += int((_overlap_distance(m) < max_distance).sum())
        estimate = n * (total / len(sample))
        if estimate > self.max_pairs:
            raise PairBudgetError(
                self._budget_message(n, estimate, 'would keep about', feats,
                                     index.cpu().numpy(), max_distance))

    def _jaccard_torch(self, v: _Rows, csc: _Columns,
                       max_distance: float) -> sp.csr_matrix:
        """Step 6 on the upper triangle, a chunk of rows at a time (cost
        ``Σ_k |{j >= i : V_jk > 0}|`` per row), the pair budget enforced as
        the pairs come; then both triangles."""
        n = len(v.crow) - 1
        cost = torch.zeros(n, dtype=torch.int64, device=v.crow.device)
        cost.index_add_(0, v.rows, csc.ptr[v.cols + 1] - csc.pos)
        parts, stored = [], 0
        for r0, r1 in _row_ranges(cost, self.max_chunk_elems):
            keys, m = _overlaps(
                v, csc, torch.arange(r0, r1, device=v.crow.device), True)
            dist = _overlap_distance(m)
            keep = dist < max_distance
            keys, dist = keys[keep], dist[keep]
            rows = torch.div(keys, n, rounding_mode='floor')
            cols = keys - rows * n
            stored = self._count_stored(stored, rows, cols, parts, n,
                                        max_distance)
            parts.append((rows, cols, dist))
        return _symmetric_csr(*(torch.cat(p) for p in zip(*parts)), n)
