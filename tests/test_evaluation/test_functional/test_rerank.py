# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch

from mmreid_usl.evaluation import evaluate_rank
from mmreid_usl.evaluation.functional import k_reciprocal_rerank
from rerank_reference import dense_rerank  # tests/ (conftest)


def _clustered(nq, ng, dim, num_ids, noise, seed=0, normalize=True):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen)
    ids = torch.randint(0, num_ids, (nq + ng, ), generator=gen)
    x = centres[ids] + noise * torch.randn(nq + ng, dim, generator=gen)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=1)
    return x[:nq], x[nq:], ids[:nq], ids[nq:]


@pytest.mark.parametrize(
    'nq,ng,dim,num_ids,noise,normalize,k1,k2,lam,chunk',
    [
        (15, 60, 16, 8, 0.5, True, 20, 6, 0.3, None),  # the paper's values
        (12, 50, 8, 5, 0.8, False, 4, 2, 0.3, 7),  # raw features, chunks
        (20, 80, 32, 10, 0.3, True, 20, 1, 0.0, 13),  # no QE, Jaccard only
        (10, 40, 16, 6, 0.6, True, 6, 3, 1.0, None),  # original only
    ])
def test_equals_dense_reference(nq, ng, dim, num_ids, noise, normalize, k1,
                                k2, lam, chunk):
    q, g, _, _ = _clustered(nq, ng, dim, num_ids, noise, normalize=normalize)
    ref = dense_rerank(q.numpy(), g.numpy(), k1, k2, lam)
    rr = k_reciprocal_rerank(q, g, k1=k1, k2=k2, lambda_value=lam,
                             chunk_size=chunk)
    out = rr.dense().numpy()
    assert out.shape == (nq, ng)
    np.testing.assert_allclose(out, ref, atol=2e-6, rtol=0)
    # the chunks served to the evaluation are the same rows
    np.testing.assert_array_equal(rr(3, 7).numpy(), out[3:7])
    if lam < 1:  # the Jaccard part is not trivial on these data
        assert rr.jaccard.nnz > 0 and (out < (1 - lam) * 0.9).any()


def test_lambda_one_is_row_normalised_distance():
    q, g, _, _ = _clustered(6, 30, 8, 4, 0.5)
    x = torch.cat([q, g])
    d = torch.cdist(x, x).pow(2)
    expected = d[:6, 6:] / d[:6].max(1, keepdim=True).values
    out = k_reciprocal_rerank(q, g, k1=5, k2=2, lambda_value=1.0).dense()
    assert torch.allclose(out, expected, atol=1e-5)


def test_evaluate_rank_with_reranked_distance():
    q, g, qp, gp = _clustered(20, 100, 16, 10, 0.9, seed=1)
    qc = torch.zeros(20, dtype=torch.long)
    gc = torch.ones(100, dtype=torch.long)
    ref = torch.from_numpy(dense_rerank(q.numpy(), g.numpy()))
    rr = k_reciprocal_rerank(q, g)
    got = evaluate_rank(q, g, qp, gp, qc, gc, chunk_size=6, dist_fn=rr)
    exp = evaluate_rank(
        q, g, qp, gp, qc, gc, dist_fn=lambda s, e: ref[s:e].clone())
    assert got['mAP'] == pytest.approx(exp['mAP'], abs=1e-9)
    assert torch.equal(got['cmc'], exp['cmc'])
    plain = evaluate_rank(q, g, qp, gp, qc, gc)
    assert got['mAP'] != pytest.approx(plain['mAP'])
    with pytest.raises(ValueError, match='expected'):
        evaluate_rank(
            q, g, qp, gp, qc, gc, chunk_size=6, dist_fn=lambda s, e: ref)


def test_bad_arguments():
    q, g, _, _ = _clustered(4, 10, 8, 2, 0.5)
    with pytest.raises(ValueError, match='k2 <= k1'):
        k_reciprocal_rerank(q, g, k1=3, k2=4)
    with pytest.raises(ValueError, match='lambda_value'):
        k_reciprocal_rerank(q, g, lambda_value=1.5)
    with pytest.raises(ValueError, match=r'\(Q, D\)'):
        k_reciprocal_rerank(q, g[:, :4])
    with pytest.raises(ValueError, match='distinct features'):
        k_reciprocal_rerank(torch.ones(2, 3), torch.ones(3, 3))
