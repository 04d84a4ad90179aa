# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Process-group helpers of the sharded pseudo-labelling: shard bounds,
all-gathers of ragged arrays and CSR blocks, the feature-block ring."""
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist


def _world(group=None) -> Tuple[int, int]:
    """``(rank, world_size)`` in ``group`` ((0, 1) without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _comm_device(group=None) -> torch.device:
    """Device of the collectives: CUDA for NCCL, CPU otherwise."""
    if dist.is_available() and dist.is_initialized() and \
            dist.get_backend(group) == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _global_rank(group, rank: int) -> int:
    """The global rank of ``rank`` of ``group`` (what send/recv take)."""
    if group is None:
        return rank
    return dist.get_global_rank(group, rank)


def shard_bounds(n: int, world_size: int,
                 align: int = 1) -> List[Tuple[int, int]]:
    """Row blocks of the ranks, contiguous and in rank order.

    The cut between rank ``r - 1`` and ``r`` is ``round(r N / W / a) * a``
    (``a = align``), clipped to ``[0, N]``: block sizes differ by at most
    ``a`` (a rank may get no row when ``N < W a``).
    """
    cuts = [0] + [
        min(n, int(round(r * n / world_size / align)) * align)
        for r in range(1, world_size)
    ] + [n]
    return list(zip(cuts[:-1], cuts[1:]))


def _all_gather_rows(t: torch.Tensor, sizes: Sequence[int],
                     group=None) -> torch.Tensor:
    """All-gather row blocks of (possibly) different lengths ``sizes`` (one
    per rank, in rank order) and concatenate them in rank order."""
    rank, world = _world(group)
    if world == 1:
        return t
    dev = _comm_device(group)
    width = max(sizes)
    if width == 0:
        return t
    buf = torch.zeros((width, ) + tuple(t.shape[1:]), dtype=t.dtype,
                      device=dev)
    buf[:t.shape[0]] = t.to(dev)
    out = [torch.empty_like(buf) for _ in range(world)]
    dist.all_gather(out, buf, group=group)
    return torch.cat([o[:s] for o, s in zip(out, sizes)]).to(t.device)


def _all_gather_1d(arr: np.ndarray, group=None) -> List[np.ndarray]:
    """All-gather one 1-D numpy array per rank (any lengths); returns the
    arrays of all ranks in rank order."""
    rank, world = _world(group)
    if world == 1:
        return [arr]
    dev = _comm_device(group)
    size = torch.tensor([len(arr)], dtype=torch.long, device=dev)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    t = torch.from_numpy(np.ascontiguousarray(arr))
    got = _all_gather_rows(t, sizes, group)
    out, start = [], 0
    for s in sizes:
        out.append(got[start:start + s].cpu().numpy())
        start += s
    return out


def _gather_1d_to_root(arr: np.ndarray, group=None) -> Optional[np.ndarray]:
    """Concatenation (rank order) of every rank's 1-D array on rank 0 (None
    on the other ranks). Point-to-point, so only rank 0 holds the whole."""
    rank, world = _world(group)
    if world == 1:
        return arr
    dev = _comm_device(group)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    size = torch.tensor([len(arr)], dtype=torch.long, device=dev)
    if rank != 0:
        dist.send(size, _global_rank(group, 0), group=group)
        if len(arr):
            dist.send(t.to(dev), _global_rank(group, 0), group=group)
        return None
    parts = [arr]
    for src in range(1, world):
        dist.recv(size, _global_rank(group, src), group=group)
        buf = torch.empty(int(size), dtype=t.dtype, device=dev)
        if int(size):
            dist.recv(buf, _global_rank(group, src), group=group)
        parts.append(buf.cpu().numpy())
    return np.concatenate(parts)


def _any_rank(flag: bool, group=None) -> bool:
    """True on every rank when ``flag`` is True on any rank."""
    rank, world = _world(group)
    if world == 1:
        return flag
    t = torch.tensor([int(flag)], device=_comm_device(group))
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item())


def ring_pass(block: torch.Tensor,
              bounds: Sequence[Tuple[int, int]],
              visit: Callable[[int, torch.Tensor], None],
              group=None) -> None:
    """Pass the row blocks round the ring and ``visit`` each one.

    Rank ``r`` calls ``visit(b, block_b)`` for ``b = r, r - 1, ..., r + 1``
    (mod W), ``block_b`` being rank b's rows: at step t it sends the block it
    holds to ``r + 1``, receives the next from ``r - 1`` (non-blocking, so the
    transfer overlaps ``visit``). At most two blocks are held at a time.
    Empty blocks are neither sent nor visited (both ends know the sizes).

    Args:
        block (Tensor): This rank's rows ``(e_r - s_r, D)``.
        bounds (Sequence[tuple]): :func:`shard_bounds` of all ranks.
        visit (Callable): ``visit(owner_rank, rows)``.
        group: Process group (default: the world).
    """
    rank, world = _world(group)
    dev = _comm_device(group)
    cur, owner = block, rank
    for step in range(world):
        reqs, nxt = [], None
        if step < world - 1:
            src_owner = (owner - 1) % world
            s, e = bounds[src_owner]
            nxt = torch.empty((e - s, ) + tuple(block.shape[1:]),
                              dtype=block.dtype, device=dev)
            ops = []
            if cur.shape[0]:
                ops.append(dist.P2POp(dist.isend, cur.to(dev).contiguous(),
                                      _global_rank(group, (rank + 1) % world),
                                      group=group))
            if e > s:
                ops.append(dist.P2POp(dist.irecv, nxt,
                                      _global_rank(group, (rank - 1) % world),
                                      group=group))
            # one batch: NCCL would otherwise queue the receive behind a send
            # that waits for the peer's receive
            reqs = dist.batch_isend_irecv(ops) if ops else []
        if cur.shape[0]:
            visit(owner, cur)
        for req in reqs:
            req.wait()
        if nxt is not None:
            cur, owner = nxt.to(block.device), (owner - 1) % world


def _stack_csr(parts: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]],
               n: int) -> sp.csr_matrix:
    """Vertical stack of CSR row blocks given as (indptr, indices, data)."""
    indptr = [np.zeros(1, np.int64)]
    offset = 0
    for p, _, _ in parts:
        indptr.append(p[1:].astype(np.int64) + offset)
        offset += int(p[-1])
    return sp.csr_matrix(
        (np.concatenate([d for _, _, d in parts]),
         np.concatenate([i for _, i, _ in parts]), np.concatenate(indptr)),
        shape=(n, n))


def _all_gather_csr(block: sp.csr_matrix, n: int,
                    group=None) -> sp.csr_matrix:
    """All row blocks of a CSR matrix (rank order) on every rank."""
    ptrs = _all_gather_1d(block.indptr.astype(np.int64), group)
    inds = _all_gather_1d(block.indices.astype(np.int32), group)
    data = _all_gather_1d(block.data, group)
    full = _stack_csr(list(zip(ptrs, inds, data)), n)
    full.has_sorted_indices = True
    return full


def _broadcast_labels(labels: Optional[np.ndarray], n: int,
                      group=None) -> np.ndarray:
    rank, world = _world(group)
    if world == 1:
        return labels
    t = torch.from_numpy(labels) if rank == 0 else torch.empty(
        n, dtype=torch.long)
    t = t.to(_comm_device(group))
    dist.broadcast(t, _global_rank(group, 0), group=group)
    return t.cpu().numpy()
