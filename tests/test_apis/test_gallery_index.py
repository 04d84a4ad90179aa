# Copyright (c) mmreid_usl contributors. All rights reserved.
"""GalleryIndex.search: plain and re-ranked search, top-k, results."""
import numpy as np
import pytest
import torch

from mmreid_usl.apis import GalleryIndex
from mmreid_usl.evaluation.functional import k_reciprocal_rerank
from mmreid_usl.utils.search import faiss_available


def _unit(n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g),
                                         dim=1)


@pytest.fixture(scope='module')
def index() -> GalleryIndex:
    feats = _unit(40, seed=1)
    pids = np.arange(40) // 4
    return GalleryIndex(feats, [f'g{j:02d}.jpg' for j in range(40)],
                        pids=pids,
                        camids=np.arange(40) % 2,
                        meta=dict(config='a.py', checkpoint='a.pth',
                                  encoder='student'))


@pytest.fixture(scope='module')
def queries(index) -> torch.Tensor:
    q = index.features[[3, 17, 30, 8]] * 0.7 + _unit(4, seed=2) * 0.3
    return torch.nn.functional.normalize(q, dim=1)


def test_plain_search_is_the_cosine_order(index, queries):
    scores, indices = index.search(queries, topk=7, backend='torch')
    sim = queries @ index.features.t()
    assert torch.equal(
        indices, torch.argsort(sim, dim=1, descending=True,
                               stable=True)[:, :7])
    torch.testing.assert_close(scores, sim.gather(1, indices), atol=1e-6,
                               rtol=0)
    assert scores.device.type == 'cpu' and indices.dtype == torch.long
    # rerank=None / False are the plain search
    assert torch.equal(index.search(queries, 7, rerank=False)[1], indices)
    if faiss_available():
        s_f, i_f = index.search(queries, 7, backend='faiss')
        assert torch.equal(i_f, indices)
        torch.testing.assert_close(s_f, scores, atol=1e-5, rtol=0)


def test_reranked_search_is_the_topk_of_the_reranked_distance(
        index, queries):
    scores, indices = index.search(queries, topk=6, rerank=True)
    dense = k_reciprocal_rerank(queries, index.features).dense()
    assert torch.equal(indices,
                       torch.argsort(dense, dim=1, stable=True)[:, :6])
    torch.testing.assert_close(scores, 1 - dense.gather(1, indices))
    assert (scores[:, 1:] <= scores[:, :-1]).all()  # best first
    # True and an empty dict are the paper's defaults; a dict is passed on
    assert torch.equal(index.search(queries, 6, rerank={})[1], indices)
    cfg = dict(k1=5, k2=2, lambda_value=0.1)
    other = index.search(queries, 6, rerank=cfg)[1]
    dense = k_reciprocal_rerank(queries, index.features, **cfg).dense()
    assert torch.equal(other, torch.argsort(dense, dim=1, stable=True)[:, :6])
    # re-ranking changes the order of the plain search
    assert not torch.equal(index.search(queries, 6)[1], indices)


@pytest.mark.parametrize('rerank', [None, True])
def test_topk(index, queries, rerank):
    scores, indices = index.search(queries, topk=1000, rerank=rerank)
    assert indices.shape == scores.shape == (4, 40)
    assert (torch.sort(indices, dim=1).values == torch.arange(40)).all()
    assert torch.equal(
        index.search(queries, 3, rerank=rerank)[1], indices[:, :3])
    one = index.search(queries[0], 3, rerank=rerank)[1]  # a (D, ) vector
    assert torch.equal(one, indices[:1, :3])
    with pytest.raises(ValueError, match='topk must be >= 1'):
        index.search(queries, 0, rerank=rerank)
    with pytest.raises(ValueError, match='another model'):
        index.search(torch.ones(2, 8), 3, rerank=rerank)


def test_no_query_and_bad_backend(index, queries):
    scores, indices = index.search(queries[:0], 5)
    assert scores.shape == indices.shape == (0, 5)
    with pytest.raises(ValueError, match='backend'):
        index.search(queries, 5, backend='annoy')


def test_results_and_provenance(index, queries, monkeypatch):
    scores, indices = index.search(queries[:2], 3)
    results = index.to_results(['q0.jpg', 'q1.jpg'], scores, indices)
    assert [r['query'] for r in results] == ['q0.jpg', 'q1.jpg']
    for r, ix in zip(results, indices.tolist()):
        assert r['indices'] == ix
        assert r['paths'] == [f'g{j:02d}.jpg' for j in ix]
        assert r['pids'] == [j // 4 for j in ix]
        assert r['camids'] == [j % 2 for j in ix]
        assert all(isinstance(s, float) for s in r['scores'])
    # a warning for what differs (by base name; unknown values are skipped)
    from mmreid_usl.apis import gallery_index as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, *args, **kwargs: logged.append(msg))
    index.warn_if_other_model(
        dict(config='/x/a.py', checkpoint='b.pth', encoder=''))
    assert len(logged) == 1 and "checkpoint='a.pth'" in logged[0]
    # an index saved before the rename names its encoder feat_source
    logged.clear()
    old = GalleryIndex(index.features, index.paths,
                       meta=dict(config='a.py', feat_source='momentum'))
    old.warn_if_other_model(dict(config='a.py', encoder='student'))
    assert len(logged) == 1 and "encoder='momentum'" in logged[0]
