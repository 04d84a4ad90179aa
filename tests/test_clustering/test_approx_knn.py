# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Approximate kNN (issue 26): contract of knn_search, recall and labels."""
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from mmreid_usl.clustering import DBSCANClusterer, JaccardDistance, knn_search
from mmreid_usl.clustering.approx_knn import (approx_knn_search,
                                              default_max_nprobe,
                                              default_nlist, recall_at_k,
                                              refine_knn)
from mmreid_usl.clustering.knn_refine import reverse_merge

pytest.importorskip('faiss')


def _clustered(n=3000, ids=150, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    pids = rng.integers(0, ids, n)
    x = centres[pids] + 0.35 * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.from_numpy(x.astype(np.float32)), pids


def test_default_nlist():
    assert default_nlist(10) == 1
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(20_000) == 512  # N // 39 = 512 < 566


def test_recall_at_k():
    exact = np.array([[0, 1, 2], [1, 0, 2]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[0, 2, 5], [1, 7, 8]]), exact) == \
        pytest.approx(3 / 6)


@pytest.mark.parametrize('kw', [
    dict(),
    dict(index_type='ivf_pq'),
    dict(pca_dim=16),
    dict(index_type='hnsw', reverse=True),
])
def test_contract_recall_and_ari(kw):
    feats, pids = _clustered()
    k = 20
    sq_e, ix_e = knn_search(feats, k)
    info = {}
    sq, ix = approx_knn_search(feats, k, info=info, **kw)
    n = len(feats)
    assert sq.dtype == torch.float32 and ix.dtype == torch.int64
    assert sq.shape == ix.shape == (n, k)
    assert torch.equal(ix[:, 0], torch.arange(n))  # self first
    assert bool((sq[:, 1:] >= sq[:, :-1]).all())  # ascending
    # squared distances of the returned pairs
    true = ((feats[:, None] - feats[ix])**2).sum(-1)
    torch.testing.assert_close(sq[:, 1:], true[:, 1:], atol=1e-5, rtol=0)
    if kw.get('index_type') == 'hnsw':
        assert k <= info['ef_search'] and info['hnsw_m'] == 32
    else:
        assert info['nlist'] == default_nlist(n) and 1 <= info['nprobe']
    recall = recall_at_k(ix, ix_e)
    assert recall >= (0.9 if not kw else 0.8), (kw, info, recall)
    jd = JaccardDistance(k1=k, k2=6)
    exact = DBSCANClusterer(eps=0.6)(dist=jd.from_knn(feats, sq_e, ix_e))
    approx = DBSCANClusterer(eps=0.6)(dist=jd.from_knn(feats, sq, ix))
    assert exact.max() >= 50
    assert adjusted_rand_score(exact, approx) >= 0.95
    assert adjusted_rand_score(pids, approx) >= 0.9


def test_fixed_params_and_refine():
    feats, _ = _clustered(n=2000)
    sq_e, ix_e = knn_search(feats, 10)
    info = {}
    _, ix1 = approx_knn_search(feats, 10, nlist=40, nprobe=1, info=info,
                               refine_iters=0)
    assert info['nprobe'] == 1 and info['nlist'] == 40
    r1 = recall_at_k(ix1, ix_e)
    _, ix2 = approx_knn_search(feats, 10, nlist=40, nprobe=1,
                               refine_iters=1)
    assert recall_at_k(ix2, ix_e) >= r1
    # refinement of the exact graph changes nothing
    x = feats.numpy()
    d, i = refine_knn(x, sq_e.numpy(), ix_e.numpy())
    assert recall_at_k(i, ix_e) == 1.0
    np.testing.assert_allclose(d, sq_e.numpy(), atol=1e-5)


def test_auto_refinement_and_nprobe_cap():
    """``refine_iters=None``: two passes when the sampled recall is short
    of the target (also at a given nprobe), none when it is reached; the
    calibration stops at ``max_nprobe``."""
    feats, _ = _clustered(n=2000)
    info = {}
    approx_knn_search(feats, 10, nlist=40, nprobe=1, recall_target=0.999,
                      info=info)
    assert info['sampled_recall'] < 0.999 and info['refine_iters'] == 2
    info = {}
    approx_knn_search(feats, 10, nlist=40, nprobe=40, recall_target=0.999,
                      info=info)
    assert info['sampled_recall'] == 1.0 and info['refine_iters'] == 0
    info = {}
    approx_knn_search(feats, 10, nlist=40, max_nprobe=2, recall_target=1.0,
                      refine_iters=0, info=info)
    assert info['nprobe'] == 2 and info['calib_recall'] < 1.0
    assert info['refine_s'] >= 0 and info['search_s'] > 0
    with pytest.raises(ValueError, match='refine_iters'):
        approx_knn_search(feats, 10, nprobe=1, refine_iters=-1)
    # max(4096, N / 128) candidates per query, within [1, nlist]
    assert default_max_nprobe(200_000, 1789) == 37
    assert default_max_nprobe(1_000_000, 4000) == 32
    assert default_max_nprobe(2000, 51) == 51


def test_refine_short_rows_and_expand_zero():
    """Missing entries stand for the row itself; a row left with fewer
    than k distinct candidates ends with -1 at +inf; ``expand=0`` only
    re-scores the row's own list."""
    x = np.array([[0.], [1.], [3.]], dtype=np.float32)
    index = np.array([[0, -1, -1], [1, 0, 2], [2, 1, 0]])
    d, i = refine_knn(x, None, index, expand=0)
    np.testing.assert_array_equal(i[0], [0, -1, -1])
    assert np.isinf(d[0, 1:]).all() and d[0, 0] == 0
    np.testing.assert_array_equal(i[2], [2, 1, 0])
    np.testing.assert_array_equal(d[2], [0, 4, 9])
    d, i = refine_knn(x, None, index, expand=1)
    np.testing.assert_array_equal(i[0], [0, -1, -1])  # 0 knows only 0
    with pytest.raises(ValueError, match='expand'):
        refine_knn(x, None, index, expand=-1)


def test_refine_by_hand():
    """A row gains the neighbours of its neighbours, ranked by the exact
    distance, ties by index, each once, in chunks of any size."""
    x = np.array([[0.], [1.], [2.], [3.], [-1.]], dtype=np.float32)
    # 0 knows 1 and 4 but not 2; 1 knows 2; 4 knows nothing useful
    index = np.array([[0, 1, 4], [1, 2, 0], [2, 1, 3], [3, 2, 1],
                      [4, 0, 0]])
    for chunk in (1, 2, 5):
        d, i = refine_knn(x, None, index, expand=3, chunk=chunk)
        # 0: 1 and 4 both at 1 (ties by index), 2 at 4 is beaten
        np.testing.assert_array_equal(i[0], [0, 1, 4])
        np.testing.assert_array_equal(d[0], [0, 1, 1])
        # 4: the repeated 0 counted once; 1 comes from 0's list
        np.testing.assert_array_equal(i[4], [4, 0, 1])
        np.testing.assert_array_equal(d[4], [0, 1, 4])
        # 3: 2 and 1 from its list, nothing nearer from theirs
        np.testing.assert_array_equal(i[3], [3, 2, 1])
        assert d.dtype == np.float32 and i.dtype == np.int64


def test_reverse_merge_by_hand():
    # 0's list misses 2, but 2's list has 0 at distance 0.5: the merge finds
    # it from the other end, with the distance of 2's list
    inf = np.inf
    index = np.array([[0, 1, -1], [1, 2, 0], [2, 0, 1]])
    sq = np.array([[0., 1., inf], [0., .7, 1.], [0., .5, .7]],
                  dtype=np.float32)
    d, i = reverse_merge(sq, index)
    np.testing.assert_array_equal(i, [[0, 2, 1], [1, 2, 0], [2, 0, 1]])
    np.testing.assert_array_equal(d, np.array(
        [[0, .5, 1], [0, .7, 1], [0, .5, .7]], dtype=np.float32))
    # an exact graph is a fixed point
    feats, _ = _clustered(n=400)
    sq_e, ix_e = knn_search(feats, 8)
    d, i = reverse_merge(sq_e.numpy(), ix_e.numpy())
    assert recall_at_k(i, ix_e) == 1.0


def test_approximate_backend_of_jaccard():
    feats, pids = _clustered(n=1500, ids=75)
    exact = DBSCANClusterer(eps=0.6)(dist=JaccardDistance(k1=20)(feats))
    jd = JaccardDistance(k1=20, knn_backend='hnsw',
                         knn_cfg=dict(ef_search=64, reverse=True))
    approx = DBSCANClusterer(eps=0.6)(dist=jd(feats))
    assert adjusted_rand_score(exact, approx) >= 0.95
    with pytest.raises(ValueError, match='fp32'):
        knn_search(feats, 5, backend='hnsw', precision='bf16')
    with pytest.raises(ValueError, match='approx_cfg'):
        knn_search(feats, 5, backend='faiss', approx_cfg=dict(nprobe=2))


def test_bad_args():
    feats, _ = _clustered(n=500)
    with pytest.raises(ValueError):
        approx_knn_search(feats, 10, index_type='annoy')
    with pytest.raises(ValueError, match='pca_dim'):
        approx_knn_search(feats, 10, index_type='hnsw', pca_dim=8)
    with pytest.raises(ValueError, match='ef_search'):
        approx_knn_search(feats, 10, index_type='hnsw', ef_search=5)
    with pytest.raises(ValueError):
        approx_knn_search(feats, 10, whiten=True)


def test_jaccard_camera_centred_knn_reads_the_context_camids():
    """``knn_cfg=dict(camera_centred=True)``: the camera ids come from the
    labelling context; without them the error names what is missing."""
    feats, _ = _clustered(n=1500, ids=75)
    exact = DBSCANClusterer(eps=0.6)(dist=JaccardDistance(k1=20)(feats))
    jd = JaccardDistance(k1=20, knn_backend='ivf',
                         knn_cfg=dict(nprobe=16, camera_centred=True))
    labels = DBSCANClusterer(eps=0.6)(
        dist=jd(feats, camids=torch.arange(1500) % 3))
    assert adjusted_rand_score(exact, labels) >= 0.9
    assert jd.knn_cfg == dict(nprobe=16, camera_centred=True)  # unchanged
    with pytest.raises(ValueError, match='needs the camera id'):
        jd(feats)


@pytest.mark.parametrize('centred,backend,with_cams,expect', [
    ('auto', 'ivf', True, True), ('auto', 'ivf', False, False),
    ('auto', 'hnsw', True, False), (False, 'ivf', True, False),
    (True, 'ivf_pq', True, True)])
def test_jaccard_camera_centred_auto(monkeypatch, centred, backend,
                                     with_cams, expect):
    """``camera_centred='auto'`` (the default) centres the IVF cells when
    the context has camera ids, and only for the IVF backends."""
    import mmreid_usl.clustering.approx_knn as approx
    seen = {}
    real = approx.approx_knn_search

    def spy(feats, k, **kw):
        seen.update(kw)
        return real(feats, k, **kw)

    monkeypatch.setattr(approx, 'approx_knn_search', spy)
    feats, _ = _clustered(n=400, ids=20)
    cfg = dict(nprobe=4) if backend != 'hnsw' else dict(ef_search=32)
    if centred != 'auto':
        cfg['camera_centred'] = centred
    jd = JaccardDistance(k1=10, knn_backend=backend, knn_cfg=cfg)
    camids = torch.arange(400) % 3 if with_cams else None
    jd(feats, camids=camids)
    assert (seen.get('camids') is not None) == expect
    assert 'camera_centred' not in seen
