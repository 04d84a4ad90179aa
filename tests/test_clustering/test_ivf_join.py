# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The IVF self-join: faiss's candidates, by one product per cell."""
import numpy as np
import pytest
import torch

from mmreid_usl.clustering.approx_knn import approx_knn_search
from mmreid_usl.clustering.ivf_join import ivf_lists, ivf_self_join

faiss = pytest.importorskip('faiss')


def _index(x: np.ndarray, nlist: int):
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(x.shape[1]), x.shape[1],
                               nlist)
    index.cp.seed = 0
    index.train(x)
    index.add(x)
    return index


@pytest.mark.parametrize('nprobe', [1, 3, 16])
def test_join_finds_what_faiss_search_finds(nprobe):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 16))
    x = (centres[rng.integers(0, 40, 1500)] +
         0.6 * rng.standard_normal((1500, 16))).astype(np.float32)
    index = _index(x, 16)
    index.nprobe = nprobe
    d_f, i_f = index.search(x, 10)
    d_j, i_j = ivf_self_join(x, index, 10, nprobe)
    # the same neighbours (sets: ties may order differently), distances to
    # float32 rounding of the product form
    assert all(set(a) == set(b) for a, b in zip(i_f, i_j))
    np.testing.assert_allclose(d_j, d_f, rtol=1e-4, atol=1e-4)
    assert (np.diff(d_j, axis=1) >= 0).all()
    if nprobe == 16:  # every cell probed: the exact kNN
        full = ((x[:, None] - x[None]) ** 2).sum(-1)
        np.testing.assert_allclose(d_j, np.sort(full, 1)[:, :10], atol=1e-3)


def test_short_cells_give_inf_and_minus_one():
    """Probed cells holding fewer than k rows: inf / -1, as faiss."""
    x = np.repeat(np.eye(4, dtype=np.float32) * 10, 3, axis=0)  # 4 x 3
    index = _index(x, 4)
    d, i = ivf_self_join(x, index, 5, 1)
    assert (i[:, :3] >= 0).all() and (i[:, 3:] == -1).all()
    assert np.isinf(d[:, 3:]).all() and (d[:, :3] == 0).all()
    ids, bounds = ivf_lists(index)
    assert sorted(ids.tolist()) == list(range(12)) and bounds[-1] == 12


def test_approx_knn_search_join_equals_faiss_search():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(
        rng.standard_normal((2000, 24)).astype(np.float32))
    info_j, info_f = {}, {}
    # L2 cells: faiss's search ranks in the same space as the join
    d_j, i_j = approx_knn_search(x, 8, nprobe=4, spherical=False,
                                 info=info_j)
    d_f, i_f = approx_knn_search(x, 8, nprobe=4, self_join=False,
                                 spherical=False, info=info_f)
    assert info_j['self_join'] and not info_f['self_join']
    assert (i_j[:, 0] == torch.arange(2000)).all()
    same = [set(a) == set(b) for a, b in zip(i_j.tolist(), i_f.tolist())]
    assert np.mean(same) == 1.0
    torch.testing.assert_close(d_j, d_f, rtol=1e-4, atol=1e-4)


def test_camera_centred_partition_contract():
    """``camids``: the cells are built on camera-centred rows; the join
    ranks every candidate of the probed cells in the original space (exact
    distances, ascending, self first); a wrong length is refused. What it
    gains on a camera bias is measured by
    benchmarks/ivf_camera_partition_probe.py."""
    rng = np.random.default_rng(0)
    ids, cams = rng.integers(0, 60, 3000), rng.integers(0, 3, 3000)
    x = torch.from_numpy((rng.standard_normal((60, 32))[ids] +
                          rng.standard_normal((3, 32))[cams] +
                          0.3 * rng.standard_normal((3000, 32))).astype(
                              np.float32))
    info = {}
    d, i = approx_knn_search(x, 10, nprobe=4, camids=cams, info=info)
    assert info['camera_centred'] and info['self_join']
    assert (i[:, 0] == torch.arange(3000)).all()
    torch.testing.assert_close(d, ((x[:, None] - x[i]) ** 2).sum(-1),
                               rtol=1e-4, atol=1e-4)
    assert (d.diff(dim=1) >= 0).all()
    # every cell probed: the exact kNN of the original space
    d, i = approx_knn_search(x, 10, nprobe=info['nlist'], camids=cams)
    full = ((x[:, None] - x[None]) ** 2).sum(-1)
    torch.testing.assert_close(d, full.topk(10, largest=False)[0],
                               rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match='camids has 2 entries'):
        approx_knn_search(x, 10, nprobe=2, camids=[0, 1])


def test_join_ranks_candidates_in_metric_rows():
    """An empty index (cells = nearest centroids) and ``metric_rows``: the
    probed cells' rows ranked by the metric space's distances; ``queries``
    gives those rows' results alone."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1200, 12)).astype(np.float32)
    proj = np.ascontiguousarray(x[:, :6])  # the partitioned space
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(6), 6, 12)
    index.train(proj)
    assign = index.quantizer.search(proj, 1)[1][:, 0]
    probes = index.quantizer.search(proj, 3)[1]
    d, i = ivf_self_join(proj, index, 7, 3, metric_rows=x)
    full = ((x[:, None] - x[None]) ** 2).sum(-1)
    for r in range(0, 1200, 97):
        cand = np.flatnonzero(np.isin(assign, probes[r]))
        want = np.sort(full[r, cand])[:7]
        np.testing.assert_allclose(d[r], want, rtol=1e-4, atol=1e-4)
        assert np.isin(i[r], cand).all()
    q = np.array([5, 700, 3])
    dq, iq = ivf_self_join(proj, index, 7, 3, metric_rows=x, queries=q)
    np.testing.assert_allclose(dq, d[q], rtol=1e-5, atol=1e-5)
    assert (np.sort(iq, 1) == np.sort(i[q], 1)).all()
    # queries in blocks of a small candidate buffer: the same result
    db, ib = ivf_self_join(proj, index, 7, 3, metric_rows=x,
                           max_buffer=7 * 3 * 50)
    np.testing.assert_array_equal(db, d)
    np.testing.assert_array_equal(ib, i)


def test_spherical_cells_are_unit_centroids_probed_by_inner_product():
    """``spherical=True`` (the default): unit centroids; with every cell
    probed the join gives the exact kNN; without the join, the candidates
    of the unit rows are re-scored in the original space."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(
        (3 * rng.standard_normal((2000, 16))).astype(np.float32))
    info = {}
    d, i = approx_knn_search(x, 8, nprobe=100, info=info)
    assert info['spherical'] and info['nlist'] <= 100
    full = ((x[:, None] - x[None]) ** 2).sum(-1)
    torch.testing.assert_close(d, full.topk(8, largest=False)[0],
                               rtol=1e-3, atol=1e-3)
    d_f, i_f = approx_knn_search(x, 8, nprobe=100, self_join=False)
    torch.testing.assert_close(d_f, ((x[:, None] - x[i_f]) ** 2).sum(-1),
                               rtol=1e-4, atol=1e-3)
    assert (d_f.diff(dim=1) >= 0).all() and (i_f[:, 0] ==
                                             torch.arange(2000)).all()


def test_metric_rows_as_a_tensor_keep_its_device():
    """A tensor ``metric_rows`` (on CUDA features the products run on the
    device) gives the numpy result; checked on the CPU device here."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((900, 10)).astype(np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(10), 10, 9)
    index.train(x)
    d, i = ivf_self_join(x, index, 6, 2, metric_rows=x)
    dt, it = ivf_self_join(x, index, 6, 2, metric_rows=torch.from_numpy(x))
    np.testing.assert_array_equal(dt, d)
    np.testing.assert_array_equal(it, i)
