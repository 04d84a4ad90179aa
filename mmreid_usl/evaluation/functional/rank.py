# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Chunked ReID ranking metrics: mAP, CMC and mINP (Market-1501 protocol)."""
from typing import Callable, Dict, Optional, Union

import numpy as np
import torch
from mmengine.logging import print_log

ArrayLike = Union[np.ndarray, torch.Tensor, list]


def _as_long(x: ArrayLike, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if isinstance(x, list) else x,
                           device=device).long().reshape(-1)


def evaluate_rank(q_feats: torch.Tensor,
                  g_feats: torch.Tensor,
                  q_pids: ArrayLike,
                  g_pids: ArrayLike,
                  q_cams: ArrayLike,
                  g_cams: ArrayLike,
                  max_rank: int = 50,
                  chunk_size: Optional[int] = None,
                  device: Optional[Union[str, torch.device]] = None,
                  normalize: bool = False,
                  dist_fn: Optional[Callable[[int, int], torch.Tensor]] = None,
                  dtype: torch.dtype = torch.float32
                  ) -> Dict[str, object]:
    """ReID retrieval metrics under the Market-1501 protocol, in query chunks.

    Distance is the squared Euclidean ``||q||² + ||g||² - 2 q·g`` (on
    L2-normalised features, ``2 - 2 cos``). For each query, gallery entries
    with the same pid AND the same camera are removed; the remaining
    same-pid entries are its positives (matches); queries without any match
    are skipped (``docs/algorithms/common.md#evaluation-protocol``).

    Per query with ``m`` matches at distances ``p_1 <= ... <= p_m`` and
    ``n(t)`` = number of remaining gallery entries with distance ``<= t``:

    - AP (non-interpolated, = ``sklearn.metrics.average_precision_score``
      with score ``-dist``): ``AP = (1/m) Σ_t P(p_t)``,
      ``P(p) = #{matches <= p} / n(p)``. Tied distances are grouped as in
      sklearn (a tie group shares one precision that counts the whole group).
    - CMC (``first_match_break``): the first match's rank is
      ``1 + #{non-matches with distance <= p_1}`` (ties with non-matches
      count against the query), ``cmc[r] = P(rank <= r + 1)``.
    - mINP (Ye et al., TPAMI 2021): ``INP = m / n(p_m)``.

    Without ties all three equal the usual sort-based definitions. Ranks are
    obtained without sorting the gallery (hand-written, no library computes
    them chunk-wise): the matches' distances (a handful per query) are sorted
    and every gallery distance is bucketed among them with
    ``torch.searchsorted`` (O(G log m) per query). Only a
    ``chunk_size × G`` slice of the distance matrix exists at a time.

    Args:
        q_feats (Tensor): Query features (Q, D).
        g_feats (Tensor): Gallery features (G, D).
        q_pids, g_pids, q_cams, g_cams (array-like): Ids and cameras.
        max_rank (int): Length of the CMC curve. Defaults to 50.
        chunk_size (int, optional): Queries per chunk. Defaults to about
            ``2**23 / G`` (32 MiB of float32 distances).
        device (str | torch.device, optional): Where to compute. Defaults to
            the device of ``q_feats``.
        normalize (bool): L2-normalise the features first. Defaults to False.
        dist_fn (Callable, optional): ``dist_fn(s, e)`` returns a new
            ``(e - s, G)`` tensor of distances of queries ``s:e`` to the
            gallery, used instead of the squared Euclidean distance (e.g. a
            :class:`ReRankedDistance`). Defaults to None.
        dtype (torch.dtype): Precision of the distances that are ranked.
            float32 (the default) rounds distances that differ in the 8th
            digit to one value, which then tie; ``torch.float64`` ranks
            float64 features without that rounding (the parity harness
            compares two float64 runs with it).

    Returns:
        dict: ``mAP`` and ``mINP`` (floats in [0, 1]), ``cmc`` (float64 Tensor
        of length ``max_rank``, on CPU) and ``num_valid`` (queries scored).
    """
    device = torch.device(device) if device is not None else q_feats.device
    qf = q_feats.detach().to(device, dtype)
    gf = g_feats.detach().to(device, dtype)
    if normalize:
        qf = torch.nn.functional.normalize(qf, dim=1)
        gf = torch.nn.functional.normalize(gf, dim=1)
    q_pids, g_pids = _as_long(q_pids, device), _as_long(g_pids, device)
    q_cams, g_cams = _as_long(q_cams, device), _as_long(g_cams, device)
    num_q, num_g = qf.shape[0], gf.shape[0]
    if chunk_size is None:
        chunk_size = max(1, (1 << 23) // max(num_g, 1))
    g_norm = (gf * gf).sum(1)

    # gallery grouped by pid: the candidate matches of a query are one slice
    g_order = torch.argsort(g_pids, stable=True)
    uniq, counts = torch.unique_consecutive(g_pids[g_order],
                                            return_counts=True)
    starts = torch.cumsum(counts, 0) - counts

    ap_sum = inp_sum = 0.0
    num_valid = 0
    cmc_hist = torch.zeros(max_rank, dtype=torch.float64, device=device)
    for s in range(0, num_q, chunk_size):
        e = min(s + chunk_size, num_q)
        b = e - s
        if dist_fn is None:
            dist = torch.mm(qf[s:e], gf.t())
            # ||q||^2 is constant per query and does not change any ranking
            dist.mul_(-2).add_(g_norm[None])
        else:
            dist = dist_fn(s, e).to(device, dtype).contiguous()
            if dist.shape != (b, num_g):
                raise ValueError(f'dist_fn({s}, {e}) returned shape '
                                 f'{tuple(dist.shape)}, expected '
                                 f'{(b, num_g)}')
        loc = torch.searchsorted(uniq, q_pids[s:e]).clamp_(max=len(uniq) - 1)
        n_cand = torch.where(uniq[loc] == q_pids[s:e], counts[loc], 0)
        width = max(int(n_cand.max()), 1)
        slot = torch.arange(width, device=device)
        in_slot = slot[None] < n_cand[:, None]
        cand = g_order[(starts[loc][:, None] + slot[None]).clamp_(
            max=num_g - 1)]
        same_cam = g_cams[cand] == q_cams[s:e, None]
        junk = in_slot & same_cam
        is_pos = in_slot & ~same_cam
        # removed entries (same pid, same camera) go to +inf
        rows = torch.arange(b, device=device)[:, None].expand_as(cand)
        dist[rows[junk], cand[junk]] = float('inf')
        pos_d = torch.where(is_pos, dist.gather(1, cand),
                            torch.full_like(dist[:, :1], float('inf')))
        thr, _ = torch.sort(pos_d, dim=1)
        npos = is_pos.sum(1)
        # bucket[x] = #{matches with distance < x}; x <= thr_t iff
        # bucket <= t, so n(thr_t) is a cumulative histogram of the buckets
        bucket = torch.searchsorted(thr.contiguous(), dist, out_int32=True)
        del dist
        bucket.add_((torch.arange(b, device=device, dtype=torch.int32) *
                     (width + 1))[:, None])
        hist = torch.bincount(bucket.view(-1), minlength=b * (width + 1))
        del bucket
        last = (npos - 1).clamp(min=0)[:, None]
        n_le = torch.cumsum(hist.view(b, width + 1)[:, :width], 1).double()
        pos_le = torch.searchsorted(thr, thr, right=True).double()
        valid = npos > 0
        t_ok = slot[None] < npos[:, None]
        prec = torch.where(t_ok, pos_le / n_le.clamp(min=1), 0.0)
        npos_v = npos[valid].double()
        ap_sum += float((prec.sum(1)[valid] / npos_v).sum())
        inp_sum += float(
            (npos_v / n_le.gather(1, last).squeeze(1)[valid]).sum())
        first_rank = (n_le[:, 0] - pos_le[:, 0] + 1).long()[valid]
        cmc_hist += torch.bincount(
            (first_rank - 1).clamp(max=max_rank),
            minlength=max_rank + 1)[:max_rank].double()
        num_valid += int(valid.sum())
    if num_valid == 0:
        print_log('evaluate_rank: no query has a valid match',
                  logger='current', level=30)
        return dict(
            mAP=0.0,
            mINP=0.0,
            cmc=torch.zeros(max_rank, dtype=torch.float64),
            num_valid=0)
    cmc = (torch.cumsum(cmc_hist, 0) / num_valid).cpu()
    return dict(mAP=ap_sum / num_valid, mINP=inp_sum / num_valid, cmc=cmc,
                num_valid=num_valid)
