# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch

from mmreid_usl.clustering import knn_search


def _feats(n=500, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


def test_backends_agree():
    x = _feats()
    d_f, i_f = knn_search(x, 10, backend='faiss')
    d_t, i_t = knn_search(x, 10, backend='torch', chunk_size=77)
    d_a, i_a = knn_search(x, 10)
    assert d_f.dtype == torch.float32 and i_f.dtype == torch.long
    assert d_f.shape == i_f.shape == (500, 10)
    torch.testing.assert_close(i_f, i_t, rtol=0, atol=0)
    torch.testing.assert_close(d_f, d_t, rtol=0, atol=1e-5)
    torch.testing.assert_close(i_a, i_f, rtol=0, atol=0)
    assert (i_t[:, 0] == torch.arange(500)).all()
    # ascending and exact
    assert (d_t[:, 1:] >= d_t[:, :-1]).all()
    ref = torch.cdist(x, x).pow(2).topk(10, largest=False)
    torch.testing.assert_close(d_t, ref.values, rtol=0, atol=1e-5)


def test_self_first_with_duplicates():
    x = _feats(200)
    x[10:20] = x[10]  # 10 duplicates, more than k=5
    x[50] = x[51]
    for backend in ('faiss', 'torch'):
        d, i = knn_search(x, 5, backend=backend)
        assert (i[:, 0] == torch.arange(200)).all()
        assert set(i[12].tolist()) <= set(range(10, 20))
        assert i[50, 1] == 51 and i[51, 1] == 50
        assert d[:, 0].abs().max() < 1e-5


def test_reduced_precision():
    x = _feats(400, 64)
    _, i32 = knn_search(x, 10, backend='torch')
    d16, i16 = knn_search(x, 10, backend='torch', precision='bf16')
    assert d16.dtype == torch.float32
    # bf16 keeps most neighbours
    recall = sum(len(set(a.tolist()) & set(b.tolist()))
                 for a, b in zip(i32, i16)) / i32.numel()
    assert recall > 0.8
    d_auto, _ = knn_search(x, 10, precision='bf16')  # auto -> torch
    assert d_auto.shape == (400, 10)


def test_errors():
    x = _feats(20)
    with pytest.raises(ValueError):
        knn_search(x, 30)
    with pytest.raises(ValueError):
        knn_search(x, 5, backend='faiss', precision='fp16')
    with pytest.raises(ValueError):
        knn_search(x, 5, backend='annoy')
