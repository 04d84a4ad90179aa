# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmreid_usl.evaluation import evaluate_rank
from mmreid_usl.registry import METRICS
from mmreid_usl.structures.reid_data_sample import ReIDDataSample


def fake_samples(num=120, num_query=30, dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pids = torch.randint(0, 12, (num, ), generator=gen)
    cams = torch.randint(0, 3, (num, ), generator=gen)
    centres = torch.randn(12, dim, generator=gen)
    feats = torch.nn.functional.normalize(centres[pids] +
                                          torch.randn(num, dim, generator=gen),
                                          dim=1)
    samples = []
    for i in range(num):
        s = ReIDDataSample(metainfo=dict(
            sample_idx=i, camid=int(cams[i]), is_query=i < num_query))
        s.set_gt_label(pids[i]).set_pred_feature(feats[i])
        samples.append(s.to_dict())
    return samples, feats, pids, cams


def test_reid_metric_end_to_end():
    samples, feats, pids, cams = fake_samples()
    metric = METRICS.build(dict(type='ReIDMetric'))
    for s in range(0, len(samples), 32):  # batches
        metric.process(None, samples[s:s + 32])
    res = metric.evaluate(len(samples))
    assert set(res) == {
        f'reid/{k}'
        for k in ('mAP', 'R1', 'R5', 'R10', 'mINP')
    }
    ref = evaluate_rank(feats[:30], feats[30:], pids[:30], pids[30:],
                        cams[:30], cams[30:])
    assert res['reid/mAP'] == pytest.approx(ref['mAP'] * 100)
    assert res['reid/mINP'] == pytest.approx(ref['mINP'] * 100)
    assert res['reid/R5'] == pytest.approx(float(ref['cmc'][4]) * 100)
    assert 0 <= res['reid/R1'] <= res['reid/R5'] <= res['reid/R10'] <= 100


def test_reid_metric_keeps_one_row_per_sample():
    """``pred_feature`` is a row view of the batch's features; the stored
    result owns just its row, so the pickle that gathers the results across
    ranks holds N x D floats, not N x B x D."""
    import pickle
    samples, feats, _, _ = fake_samples(num=120, dim=16)
    metric = METRICS.build(dict(type='ReIDMetric'))
    metric.process(None, samples)
    assert samples[5]['pred_feature'].untyped_storage().nbytes() == \
        120 * 16 * 4  # the view this test feeds
    for r in metric.results:
        assert r['feat'].untyped_storage().nbytes() == 16 * 4
    # ~0.3 KB of pickle per tensor besides its 64 bytes; the views: 7.7 KB
    assert len(pickle.dumps(metric.results)) < 120 * 16 * 4 * 10
    torch.testing.assert_close(torch.stack(
        [r['feat'] for r in metric.results]), feats, rtol=0, atol=0)


def test_reid_metric_perfect_and_topk():
    samples, *_ = fake_samples(num=40, num_query=10)
    # give every id a distinct one-hot feature: perfect retrieval
    for s in samples:
        s['pred_feature'] = torch.nn.functional.one_hot(s['gt_label'][0],
                                                        12).float()
    metric = METRICS.build(dict(type='ReIDMetric', topk=(1, 3)))
    metric.process(None, samples)
    res = metric.evaluate(40)
    assert set(res) == {'reid/mAP', 'reid/R1', 'reid/R3', 'reid/mINP'}
    np.testing.assert_allclose(list(res.values()), 100)
