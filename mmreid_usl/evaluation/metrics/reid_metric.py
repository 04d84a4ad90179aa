# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Person re-identification retrieval metric (mAP, CMC, mINP)."""
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmreid_usl.registry import METRICS
from ..functional.rank import evaluate_rank
from ..functional.rerank import k_reciprocal_rerank


@METRICS.register_module()
class ReIDMetric(BaseMetric):
    """mAP, Rank-k (CMC) and mINP of query-vs-gallery retrieval.

    Market-1501 protocol (``docs/algorithms/common.md#evaluation-protocol``):
    squared Euclidean distance of the L2-normalised features, gallery
    entries with the query's pid and camera removed, queries without a
    match skipped, non-interpolated AP
    (as ``sklearn.metrics.average_precision_score``), CMC with
    ``first_match_break`` and mINP (Ye et al., "Deep Learning for Person
    Re-identification: A Survey and Outlook", TPAMI 2021):
    ``mAP = mean_q (1/m_q) Σ_t P_q(t)``, ``R-k = P(first match rank <= k)``,
    ``mINP = mean_q m_q / rank_q(last match)``. See :func:`evaluate_rank`.

    With ``rerank=True`` the distance is replaced by the k-reciprocal
    re-ranked distance (Zhong et al., CVPR 2017,
    https://arxiv.org/abs/1701.08398; :func:`k_reciprocal_rerank`,
    ``k1=20, k2=6, lambda_value=0.3`` as in the paper unless ``rerank_cfg``
    says otherwise) and the metrics are those of the re-ranked retrieval.

    Features are kept in float32 (exact), moved to CPU per batch, and
    gathered across ranks by :class:`BaseMetric` (``collect_device``).

    Args:
        topk (Sequence[int]): Ranks reported as ``R{k}``. Defaults to
            (1, 5, 10).
        max_rank (int): Length of the CMC curve. Defaults to 50.
        chunk_size (int, optional): Queries per chunk of
            :func:`evaluate_rank`. Defaults to None (automatic).
        device (str, optional): Device of the ranking computation (e.g.
            ``'cuda'``). Defaults to None (CPU).
        rerank (bool): Evaluate the k-reciprocal re-ranked distance.
            Defaults to False.
        rerank_cfg (dict, optional): Keyword arguments of
            :func:`k_reciprocal_rerank` (``k1``, ``k2``, ``lambda_value``...).
            Defaults to None (the paper's values).
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'reid'``.

    Examples:
        >>> metric = ReIDMetric()
        >>> # in a config: val_evaluator = dict(type='ReIDMetric')
    """
    default_prefix: Optional[str] = 'reid'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10),
                 max_rank: int = 50,
                 chunk_size: Optional[int] = None,
                 device: Optional[str] = None,
                 rerank: bool = False,
                 rerank_cfg: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.rerank = rerank
        self.rerank_cfg = dict(rerank_cfg or {})
        self.topk = tuple(topk)
        self.max_rank = max(max_rank, max(self.topk))
        self.chunk_size = chunk_size
        self.device = device

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store feature, pid, camera and query flag of each sample."""
        for sample in data_samples:
            get = sample.get if isinstance(sample, dict) else \
                lambda k, s=sample: getattr(s, k)
            feat = get('pred_feature')
            gt = get('gt_label')
            # a copy of its own row: ``pred_feature`` is a view of the
            # batch's (B, D) features, and the pickling of the results that
            # gathers them across ranks would write the whole batch for
            # every sample (B times the memory)
            self.results.append(
                dict(
                    feat=torch.as_tensor(feat).detach().float().cpu().clone(),
                    pid=int(torch.as_tensor(gt).reshape(-1)[0]),
                    camid=int(get('camid')),
                    is_query=bool(get('is_query'))))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics (percent) from all gathered results."""
        is_query = torch.tensor([r['is_query'] for r in results])
        feats = torch.stack([r['feat'] for r in results])
        pids = torch.tensor([r['pid'] for r in results])
        cams = torch.tensor([r['camid'] for r in results])
        q, g = is_query, ~is_query
        dist_fn = None
        if self.rerank:
            dist_fn = k_reciprocal_rerank(feats[q], feats[g],
                                          **self.rerank_cfg)
        out = evaluate_rank(
            feats[q], feats[g], pids[q], pids[g], cams[q], cams[g],
            max_rank=self.max_rank, chunk_size=self.chunk_size,
            device=self.device, dist_fn=dist_fn)
        metrics = dict(mAP=out['mAP'] * 100)
        for k in self.topk:
            metrics[f'R{k}'] = float(out['cmc'][k - 1]) * 100
        metrics['mINP'] = out['mINP'] * 100
        header = ' | '.join(f'{k:>6}' for k in metrics)
        values = ' | '.join(f'{v:6.2f}' for v in metrics.values())
        print_log(
            f'ReID results{" (re-ranked)" if self.rerank else ""} '
            f'({int(q.sum())} queries, {int(g.sum())} gallery, '
            f'{out["num_valid"]} scored):\n{header}\n{values}',
            logger='current')
        return metrics
