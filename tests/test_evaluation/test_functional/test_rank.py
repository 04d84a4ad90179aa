# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmreid_usl.evaluation import evaluate_rank


def reference_rank(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """Straightforward per-query sort (open-reid / torchreid style)."""
    dist = torch.cdist(qf.double(), gf.double()).pow(2).numpy()
    aps, inps, cmc, num_valid = [], [], np.zeros(max_rank), 0
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        d, match = dist[i][keep], g_pids[keep] == q_pids[i]
        if not match.any():
            continue
        num_valid += 1
        aps.append(average_precision_score(match, -d))
        hits = np.flatnonzero(match[np.argsort(d, kind='stable')])
        cmc[hits[0]:] += hits[0] < max_rank
        inps.append(len(hits) / (hits[-1] + 1))
    return np.mean(aps), np.mean(inps), cmc / num_valid, num_valid


def random_case(q=60, g=400, d=16, ids=25, cams=4, seed=0):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    qf = torch.nn.functional.normalize(torch.randn(q, d, generator=gen), dim=1)
    gf = torch.nn.functional.normalize(torch.randn(g, d, generator=gen), dim=1)
    return (qf, gf, rng.integers(0, ids, q), rng.integers(0, ids, g),
            rng.integers(0, cams, q), rng.integers(0, cams, g))


def test_hand_computed():
    # 1-D features: distance = (x_q - x_g)^2
    g_x = torch.tensor([1., 2., 3., 4., 5., 6.])[:, None]
    g_pids = np.array([1, 2, 1, 3, 1, 4])
    g_cams = np.array([0, 1, 1, 0, 2, 1])
    q_x = torch.tensor([0., 2.1, 0., 6.])[:, None]
    q_pids = np.array([1, 2, 5, 4])
    q_cams = np.array([0, 0, 0, 1])
    out = evaluate_rank(q_x, g_x, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    # query 0: gallery 0 removed (same pid+cam); valid list
    #   2(neg) 3(pos) 4(neg) 5(pos) 6(neg): AP = (1/2 + 2/4)/2, rank 2,
    #   INP = 2/4. query 1: first hit at rank 1, AP = INP = 1.
    # query 2: no gallery id 5, query 3: its only match is same-camera:
    # both skipped.
    assert out['num_valid'] == 2
    assert out['mAP'] == pytest.approx((0.5 + 1) / 2)
    assert out['mINP'] == pytest.approx((0.5 + 1) / 2)
    np.testing.assert_allclose(out['cmc'].numpy(), [0.5, 1, 1, 1, 1])


@pytest.mark.parametrize('chunk_size', [None, 1, 7, 1000])
def test_matches_reference(chunk_size):
    case = random_case()
    ref_ap, ref_inp, ref_cmc, ref_valid = reference_rank(*case)
    out = evaluate_rank(*case, chunk_size=chunk_size)
    assert out['num_valid'] == ref_valid
    assert abs(out['mAP'] - ref_ap) < 1e-6
    assert abs(out['mINP'] - ref_inp) < 1e-6
    np.testing.assert_allclose(out['cmc'].numpy(), ref_cmc, atol=1e-6)
    assert out['cmc'].shape == (50, )


def test_ties_follow_sklearn_grouping():
    # quantised features produce many exact distance ties
    qf, gf, *rest = random_case(q=40, g=200, d=3, ids=10, seed=1)
    qf, gf = torch.round(qf * 2) / 2, torch.round(gf * 2) / 2
    ref_ap, *_ = reference_rank(qf, gf, *rest)
    out = evaluate_rank(qf, gf, *rest, chunk_size=9)
    assert abs(out['mAP'] - ref_ap) < 1e-6


def test_no_valid_query_and_normalize():
    qf, gf, qp, gp, qc, gc = random_case(q=5, g=20)
    out = evaluate_rank(qf, gf, qp + 100, gp, qc, gc)
    assert out['num_valid'] == 0 and out['mAP'] == 0.0
    a = evaluate_rank(qf * 3, gf * 0.5, qp, gp, qc, gc, normalize=True)
    b = evaluate_rank(qf, gf, qp, gp, qc, gc)
    assert a['mAP'] == pytest.approx(b['mAP'])


def test_float64_ranking_keeps_distances_float32_ties():
    # two gallery entries 1e-12 apart: float32 rounds them to one distance
    # (a tie, sklearn-grouped: AP 0.75); float64 ranks the match first
    q = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[0.6, 0.8], [0.6 - 1e-12, 0.8]], dtype=torch.float64)
    args = (q, g, [0], [0, 1], [0], [1, 1])
    tied = evaluate_rank(*args)['mAP']
    exact = evaluate_rank(*args, dtype=torch.float64)['mAP']
    assert tied == pytest.approx(0.5)
    assert exact == pytest.approx(1.0)
