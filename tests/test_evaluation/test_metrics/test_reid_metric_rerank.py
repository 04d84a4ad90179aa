# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch

from mmreid_usl.evaluation import evaluate_rank
from mmreid_usl.registry import METRICS
from mmreid_usl.structures.reid_data_sample import ReIDDataSample
from rerank_reference import dense_rerank  # tests/ (conftest)


def _samples(num=150, num_query=30, dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, 15, (num, ), generator=gen)
    cams = torch.randint(0, 3, (num, ), generator=gen)
    centres = torch.randn(15, dim, generator=gen)
    feats = torch.nn.functional.normalize(
        centres[pids] + 0.8 * torch.randn(num, dim, generator=gen), dim=1)
    samples = []
    for i in range(num):
        s = ReIDDataSample(metainfo=dict(
            sample_idx=i, camid=int(cams[i]), is_query=i < num_query))
        s.set_gt_label(pids[i]).set_pred_feature(feats[i])
        samples.append(s.to_dict())
    return samples, feats, pids, cams


@pytest.mark.parametrize('cfg', [None, dict(k1=8, k2=3, lambda_value=0.5)])
def test_metric_rerank_equals_dense_reference(cfg):
    samples, feats, pids, cams = _samples()
    metric = METRICS.build(
        dict(type='ReIDMetric', rerank=True, rerank_cfg=cfg))
    metric.process(None, samples)
    res = metric.evaluate(len(samples))
    kwargs = cfg or dict(k1=20, k2=6, lambda_value=0.3)
    ref = torch.from_numpy(
        dense_rerank(feats[:30].numpy(), feats[30:].numpy(), **kwargs))
    exp = evaluate_rank(
        feats[:30], feats[30:], pids[:30], pids[30:], cams[:30], cams[30:],
        dist_fn=lambda s, e: ref[s:e].clone())
    assert res['reid/mAP'] == pytest.approx(exp['mAP'] * 100, abs=1e-6)
    assert res['reid/R1'] == pytest.approx(float(exp['cmc'][0]) * 100)
    plain = METRICS.build(dict(type='ReIDMetric'))
    plain.process(None, samples)
    assert plain.evaluate(len(samples))['reid/mAP'] != pytest.approx(
        res['reid/mAP'])
