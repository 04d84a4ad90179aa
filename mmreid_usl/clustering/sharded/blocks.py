# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Row blocks without the ``(N, D)`` bank: each rank's extracted rows moved
to the rank whose contiguous block holds them, and the cluster means of the
blocks.

A labelling dataloader (``DefaultSampler(shuffle=False, round_up=False)``)
gives rank ``r`` of ``W`` the images ``r, r + W, r + 2W, ...``, while the
sharded labelling wants the contiguous rows ``[s_r, e_r)``
(:func:`knn_shard_bounds`). :func:`redistribute_rows` exchanges the rows
point to point, so no rank ever holds more than its shard, its block and
one message each way (``O(N D / W)``), and every row crosses the network
once; :func:`sharded_cluster_means` then sums each rank's block per cluster
and all-reduces the sums, never gathering the rows.
"""
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist

from mmreid_usl.structures import cluster_means
from .comm import _all_gather_1d, _comm_device, _global_rank, _world

__all__ = ['redistribute_rows', 'sharded_cluster_means']


def redistribute_rows(rows: torch.Tensor,
                      indices: torch.Tensor,
                      bounds: Sequence[Tuple[int, int]],
                      group=None) -> torch.Tensor:
    """Rows ``bounds[rank]`` of the dataset, in dataset order, on each rank.

    Each rank holds some rows of an ``N``-row bank (``rows[p]`` is row
    ``indices[p]``), every row on exactly one rank, in any order. The
    indices are all-gathered (``O(N)``); then at step ``t = 1 .. W - 1``
    rank ``r`` sends to ``r + t`` the rows of that rank's block and receives
    from ``r - t`` the rows of its own (one ``batch_isend_irecv`` per step,
    so a rank holds one message each way rather than the W - 1 of an
    ``all_to_all``), each pair exchanging once. A rank holds at most its
    shard, its block and one message each way: ``O(N D / W)``.

    Args:
        rows (Tensor): ``(n_r, D)`` this rank's rows.
        indices (Tensor): ``(n_r,)`` their row numbers in ``0..N-1``.
        bounds (Sequence[tuple]): ``(start, stop)`` of every rank's block,
            contiguous and in rank order, covering ``0..N-1``
            (:func:`knn_shard_bounds`).
        group: Process group (default: the world).

    Returns:
        Tensor: ``(stop - start, D)`` the rows ``start:stop`` of this rank,
        on ``rows.device`` in ``rows.dtype``.

    Raises:
        ValueError: If the ranks' indices are not ``0..N-1`` each once.
    """
    rank, world = _world(group)
    n = bounds[-1][1]
    mine = indices.detach().cpu().numpy().astype(np.int64)
    every = _all_gather_1d(mine, group)
    total = sum(len(i) for i in every)
    seen = np.bincount(np.concatenate(every), minlength=n) if total else \
        np.zeros(n, np.int64)
    if total != n or len(seen) != n or not (seen == 1).all():
        raise ValueError(
            f'the ranks hold {total} rows for N={n}; every row 0..N-1 must '
            'be on exactly one rank.')
    start, stop = bounds[rank]
    out = rows.new_empty((stop - start, ) + tuple(rows.shape[1:]))

    def of(idx: np.ndarray, block: Tuple[int, int]) -> np.ndarray:
        return np.flatnonzero((idx >= block[0]) & (idx < block[1]))

    def place(pos: np.ndarray, got: torch.Tensor, idx: np.ndarray) -> None:
        where = torch.from_numpy(idx[pos] - start).to(out.device)
        out[where] = got.to(out.device, out.dtype)

    own = of(mine, bounds[rank])
    place(own, rows[torch.from_numpy(own).to(rows.device)], mine)
    dev = _comm_device(group)
    for step in range(1, world):
        dst, src = (rank + step) % world, (rank - step) % world
        send = of(mine, bounds[dst])
        recv = of(every[src], bounds[rank])
        ops = []
        if len(send):
            payload = rows[torch.from_numpy(send).to(rows.device)].to(dev)
            ops.append(
                dist.P2POp(dist.isend, payload.contiguous(),
                           _global_rank(group, dst), group=group))
        buf = None
        if len(recv):
            buf = torch.empty((len(recv), ) + tuple(rows.shape[1:]),
                              dtype=rows.dtype,
                              device=dev)
            ops.append(
                dist.P2POp(dist.irecv, buf, _global_rank(group, src),
                           group=group))
        # one batch: NCCL would otherwise queue the receive behind a send
        # that waits for the peer's receive
        for req in dist.batch_isend_irecv(ops) if ops else []:
            req.wait()
        if buf is not None:
            place(recv, buf, every[src])
        del buf
    return out


def sharded_cluster_means(block: torch.Tensor,
                          labels: torch.Tensor,
                          num_clusters: int,
                          group=None) -> torch.Tensor:
    r"""Cluster means of a bank split in row blocks over the ranks.

    :math:`c_j = \frac{1}{|C_j|} \sum_{i \in C_j} f_i`: each rank sums its
    block's rows per cluster (and counts them), the partial sums are
    all-reduced (SUM) over ``group``, every rank divides. The sums are the
    exact fixed-point sums of :func:`cluster_means`, so the means are
    bit-identical to ``cluster_means`` of the whole bank in one process,
    however the rows are split. Every rank of ``group`` must call it.

    Args:
        block (Tensor): ``(n_r, D)`` this rank's rows.
        labels (Tensor): ``(n_r,)`` their labels ``0..C-1``, -1 ignored.
        num_clusters (int): ``C``, the same on every rank.
        group: Process group (default: the world).

    Returns:
        Tensor: ``(C, D)`` means on ``block.device`` in ``block.dtype``,
        identical on every rank.
    """
    _, world = _world(group)
    if world == 1:
        return cluster_means(block, labels, num_clusters)
    dev = _comm_device(group)
    ops = {'sum': dist.ReduceOp.SUM, 'max': dist.ReduceOp.MAX}

    def reduce(t: torch.Tensor, op: str) -> torch.Tensor:
        buf = t.to(dev).contiguous()
        dist.all_reduce(buf, op=ops[op], group=group)
        return buf.to(t.device)

    return cluster_means(block, labels, num_clusters, reduce=reduce)
