# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ReIDInferencer and GalleryIndex on generated and on real CUHK03 images."""
import glob
import os
import os.path as osp
import random
import shutil

import mmcv
import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import Runner

from mmreid_usl.apis import GalleryIndex, ReIDInferencer, extract_features
from mmreid_usl.apis import inferencer as inferencer_module
from mmreid_usl.apis import init_model
from mmreid_usl.evaluation.functional.rank import evaluate_rank

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'cluster_contrast',
                  'cluster-contrast_mbv2_cuhk03.py')
CUHK03 = osp.join(REPO, 'data', 'cuhk03_detected')


def make_checkpoint(path: str, seed: int = 0) -> str:
    """A checkpoint of the config's model with input-dependent features.

    Random weights with BN statistics of the default (0, 1) make every image
    map to nearly the same feature; the BN statistics are set from one
    batch of noise so that the features discriminate (no download needed).
    """
    torch.manual_seed(seed)
    model = init_model(CONFIG)
    bns = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: the batch's statistics
    model.train()
    with torch.no_grad():
        model.extract_feat(torch.rand(16, 3, 192, 96) * 2 - 1)
    for bn in bns:
        bn.momentum = 0.1
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def copy_stripped(paths, folder: str, prefix: str, nested: bool = False):
    """Copy images under new names without ids; returns the new paths."""
    out = []
    order = list(range(len(paths)))
    random.Random(0).shuffle(order)
    for k, i in enumerate(order):
        sub = osp.join(folder, f'part{k % 3}') if nested else folder
        os.makedirs(sub, exist_ok=True)
        dst = osp.join(sub, f'{prefix}{k:03d}.jpg')
        shutil.copy(paths[i], dst)
        out.append(dst)
    return out


def assert_ranking_is_evaluate_rank(q: torch.Tensor, g: torch.Tensor,
                                    indices: torch.Tensor) -> None:
    """The inferencer's order is the order of evaluate_rank's distance.

    Two checks: (1) the top-k equals the ascending order of the distance
    evaluate_rank computes, ``||g||^2 - 2 q.g`` (float32 mm, its constant
    ``||q||^2`` dropped as there); (2) evaluate_rank itself puts the k-th
    result at rank k: with every gallery image its own person seen by
    another camera and the query labelled as the person of result r, the
    CMC of that query first hits at rank r + 1.
    """
    dist = torch.mm(q, g.t()).mul_(-2).add_((g * g).sum(1)[None])
    k = indices.shape[1]
    expected = torch.argsort(dist, dim=1, stable=True)[:, :k]
    assert torch.equal(indices, expected)
    num_g = g.shape[0]
    g_pids = np.arange(num_g) + 1
    for i in range(min(2, q.shape[0])):
        for r in range(k):
            j = int(indices[i, r])
            cmc = evaluate_rank(q[i:i + 1],
                                g, [j + 1],
                                g_pids, [0],
                                np.ones(num_g),
                                max_rank=k)['cmc']
            assert cmc[r] == 1 and (r == 0 or cmc[r - 1] == 0), (i, r)


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'cc.pth'))


@pytest.fixture(scope='module')
def inferencer(ckpt) -> ReIDInferencer:
    return ReIDInferencer(CONFIG, pretrained=ckpt, device='cpu', batch_size=16)


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory) -> dict:
    """Generated pedestrians: Market layout, plus id-free copies."""
    from mmreid_usl.datasets.synthetic import generate_synthetic_pedestrians
    base = tmp_path_factory.mktemp('synthetic')
    root = str(base / 'market')
    generate_synthetic_pedestrians(root,
                                   num_train_ids=1,
                                   num_test_ids=6,
                                   height=64,
                                   width=32,
                                   seed=3)
    g_src = sorted(glob.glob(osp.join(root, 'bounding_box_test', '*.jpg')))
    q_src = sorted(glob.glob(osp.join(root, 'query', '*.jpg')))[:4]
    gallery_dir = str(base / 'gallery')
    gallery = copy_stripped(g_src, gallery_dir, 'crop_', nested=True)
    with open(osp.join(gallery_dir, 'notes.txt'), 'w') as f:
        f.write('not an image')
    queries = copy_stripped(q_src, str(base / 'query'), 'person_')
    return dict(root=root,
                gallery_dir=gallery_dir,
                gallery=sorted(gallery),
                queries=queries,
                market_queries=q_src)


@pytest.fixture(scope='module')
def gallery_index(inferencer, synthetic) -> GalleryIndex:
    return inferencer.build_gallery(synthetic['gallery_dir'],
                                    show_progress=False)


def test_embed_paths_folders_arrays(inferencer, synthetic, gallery_index):
    # a folder is searched recursively, sorted, non-images ignored
    items = inferencer._inputs_to_list(synthetic['gallery_dir'])
    assert items == synthetic['gallery'] == gallery_index.paths
    feats = gallery_index.features
    assert feats.shape == (len(items), 1280) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(len(items)))
    # no names with ids -> no ids; meta records where the features came from
    assert gallery_index.pids is None
    assert gallery_index.meta['encoder'] == 'student'
    assert gallery_index.meta['checkpoint'].endswith('cc.pth')

    # arrays (BGR uint8, as mmcv.imread) give the features of their files;
    # a 4-D array is a batch of images
    arrays = [mmcv.imread(p) for p in items[:5]]
    f_arr, names, _ = inferencer.embed(arrays, show_progress=False)
    assert names == [f'<array {i}>' for i in range(5)]
    torch.testing.assert_close(f_arr, feats[:5], atol=1e-5, rtol=0)
    f_batch, _, _ = inferencer.embed(np.stack(arrays), show_progress=False)
    torch.testing.assert_close(f_batch, f_arr, atol=1e-5, rtol=0)
    gray = mmcv.bgr2gray(arrays[0])
    f_gray, _, _ = inferencer.embed(gray, show_progress=False)
    assert f_gray.shape == (1, 1280)
    with pytest.raises(ValueError, match='uint8'):
        inferencer.embed(arrays[0].astype(np.float32), show_progress=False)


def test_features_are_the_evaluation_features(inferencer, synthetic,
                                              gallery_index):
    """Same images through the config's test dataloader and the model."""
    cfg = Config.fromfile(CONFIG)
    loader_cfg = cfg.test_dataloader
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader_cfg.batch_size = 16
    loader_cfg.dataset.data_root = synthetic['root']
    loader_cfg.dataset.split = 'gallery'
    loader = Runner.build_dataloader(loader_cfg)
    feats, idx = extract_features(inferencer.model,
                                  loader,
                                  show_progress=False)
    ordered = torch.empty_like(feats)
    ordered[idx] = feats
    dataset = loader.dataset
    src = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    mine, _, _ = inferencer.embed(src, show_progress=False)
    torch.testing.assert_close(mine, ordered.cpu(), atol=1e-5, rtol=0)


def test_raw_test_features_are_searched_by_cosine(synthetic):
    """A model evaluated on raw features (test_cfg.normalize=False, as the
    Theory configs) still gives unit features for the cosine search."""
    from tiny_config import theory_test_cfg
    cfg = Config(theory_test_cfg(synthetic['root']))
    cfg.model.test_cfg = dict(normalize=False)
    inf = ReIDInferencer(cfg, device='cpu', batch_size=16)
    assert inf.model.test_cfg['normalize'] is False
    feats, _, _ = inf.embed(synthetic['gallery'][:4], show_progress=False)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(4))


def test_search_is_evaluation_ranking(inferencer, synthetic, gallery_index):
    inferencer.set_gallery(gallery_index)
    results = inferencer(synthetic['queries'], topk=10)
    assert [r['query'] for r in results] == synthetic['queries']
    q, _, _ = inferencer.embed(synthetic['queries'], show_progress=False)
    indices = torch.tensor([r['indices'] for r in results])
    assert_ranking_is_evaluate_rank(q, gallery_index.features, indices)
    for r in results:
        assert r['paths'] == [gallery_index.paths[j] for j in r['indices']]
        assert r['scores'] == sorted(r['scores'], reverse=True)
        expected = (
            q[results.index(r)] @ gallery_index.features[r['indices']].t())
        torch.testing.assert_close(torch.tensor(r['scores']),
                                   expected,
                                   atol=1e-5,
                                   rtol=0)
    # topk larger than the gallery returns the whole gallery
    everything = inferencer(synthetic['queries'][0], topk=1000)[0]
    assert sorted(everything['indices']) == list(range(len(gallery_index)))


def test_backends_agree(gallery_index):
    # mixtures of two gallery rows (unequal weights: no exact ties)
    q = gallery_index.features[[3, 0, 7]] * 0.7 + gallery_index.features[
        [1, 2, 5]] * 0.3
    q = torch.nn.functional.normalize(q, dim=1)
    s_f, i_f = gallery_index.search(q, 8, backend='faiss')
    s_t, i_t = gallery_index.search(q, 8, backend='torch', chunk_size=2)
    assert torch.equal(i_f, i_t)
    torch.testing.assert_close(s_f, s_t, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='backend'):
        gallery_index.search(q, 8, backend='annoy')
    with pytest.raises(ValueError, match=r'\(Q, 1280\)'):
        gallery_index.search(torch.ones(2, 8), 3)


def test_saved_index_gives_the_same_results(inferencer, synthetic,
                                            gallery_index, tmp_path):
    path = gallery_index.save(str(tmp_path / 'gallery'))
    assert path.endswith('gallery.npz')
    with np.load(path, allow_pickle=False) as data:  # nothing pickled
        assert set(
            data.files) == {'features', 'paths', 'meta', 'format_version'}
    loaded = GalleryIndex.load(path)
    assert torch.equal(loaded.features, gallery_index.features)
    assert loaded.paths == gallery_index.paths
    assert loaded.meta == gallery_index.meta

    inferencer.set_gallery(gallery_index)
    fresh = inferencer(synthetic['queries'], topk=7)
    reloaded = ReIDInferencer(CONFIG,
                              pretrained=gallery_index.meta['checkpoint'],
                              device='cpu',
                              gallery=path)
    assert reloaded(synthetic['queries'], topk=7) == fresh


def test_ids_parsed_from_market_names(inferencer, synthetic, tmp_path):
    index = inferencer.build_gallery(osp.join(synthetic['root'],
                                              'bounding_box_test'),
                                     show_progress=False)
    names = [osp.basename(p) for p in index.paths]
    assert index.pids.tolist() == [int(n.split('_')[0]) for n in names]
    assert index.camids.tolist() == [
        int(n.split('_c')[1][0]) - 1 for n in names
    ]
    loaded = GalleryIndex.load(index.save(str(tmp_path / 'ids.npz')))
    assert np.array_equal(loaded.pids, index.pids)
    assert np.array_equal(loaded.camids, index.camids)
    inferencer.set_gallery(index)
    res = inferencer(synthetic['market_queries'][:1], topk=3)[0]
    assert res['pids'] == [int(index.pids[j]) for j in res['indices']]


def test_unreadable_images(inferencer, synthetic, tmp_path, monkeypatch):
    logged = []
    real_print_log = inferencer_module.print_log

    def record(msg, *args, **kwargs):
        logged.append(msg)
        return real_print_log(msg, *args, **kwargs)

    monkeypatch.setattr(inferencer_module, 'print_log', record)
    folder = tmp_path / 'gallery'
    folder.mkdir()
    for p in synthetic['gallery'][:5]:
        shutil.copy(p, folder)
    bad = folder / 'broken.jpg'
    bad.write_bytes(b'this is not a jpeg')
    # gallery: the corrupt file is skipped with a warning naming it
    index = inferencer.build_gallery(str(folder), show_progress=False)
    assert len(index) == 5 and str(bad) not in index.paths
    assert any('broken.jpg' in m and 'skipped' in m for m in logged)
    # query: an error naming the file
    with pytest.raises(ValueError, match='broken.jpg'):
        inferencer.embed(str(bad), show_progress=False)
    # a gallery where nothing can be read
    only_bad = tmp_path / 'only_bad'
    only_bad.mkdir()
    shutil.copy(bad, only_bad / 'a.png')
    with pytest.raises(ValueError, match='none of the 1 images'):
        inferencer.build_gallery(str(only_bad), show_progress=False)
    empty = tmp_path / 'empty'
    (empty / 'sub').mkdir(parents=True)
    (empty / 'sub' / 'readme.txt').write_text('x')
    with pytest.raises(ValueError, match='holds no image'):
        inferencer.build_gallery(str(empty))
    with pytest.raises(FileNotFoundError, match='neither'):
        inferencer.build_gallery(str(tmp_path / 'missing'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        inferencer.set_gallery(str(tmp_path / 'missing.npz'))
    with pytest.raises(ValueError, match='not a gallery index|cannot read'):
        np.savez(str(tmp_path / 'other.npz'), x=np.ones(3))
        GalleryIndex.load(str(tmp_path / 'other.npz'))


def test_gallery_index_validation():
    with pytest.raises(ValueError, match='empty'):
        GalleryIndex(np.zeros((0, 4), np.float32), [])
    with pytest.raises(ValueError, match='L2-normalised'):
        GalleryIndex(np.full((2, 4), 3, np.float32), ['a', 'b'])
    with pytest.raises(ValueError, match='2 features but 1 paths'):
        GalleryIndex(np.eye(2, dtype=np.float32), ['a'])
    idx = GalleryIndex(np.full((2, 4), 3, np.float32), ['a', 'b'],
                       normalize=True)
    torch.testing.assert_close(idx.features.norm(dim=1), torch.ones(2))


def test_search_errors_and_rerank(ckpt, gallery_index):
    inf = ReIDInferencer(CONFIG, pretrained=ckpt, device='cpu')
    with pytest.raises(RuntimeError, match='no gallery'):
        inf.search(gallery_index.features[:1])
    inf.set_gallery(gallery_index)
    # k-reciprocal re-ranking: the top-k of the re-ranked distance
    from mmreid_usl.evaluation.functional import k_reciprocal_rerank
    q = gallery_index.features[[2, 9, 17]] * 0.8 + \
        gallery_index.features[[4, 1, 0]] * 0.2
    q = torch.nn.functional.normalize(q, dim=1)
    scores, indices = inf.search(q, topk=6, rerank=True)
    dense = k_reciprocal_rerank(q, gallery_index.features).dense()
    assert torch.equal(indices,
                       torch.argsort(dense, dim=1, stable=True)[:, :6])
    torch.testing.assert_close(scores, 1 - dense.gather(1, indices))
    plain = inf.search(q, topk=6)[1]
    assert not torch.equal(plain, indices)  # re-ranking changes the order
    inf.rerank_cfg = dict(k1=5, k2=2, lambda_value=0.1)
    assert not torch.equal(inf.search(q, topk=6, rerank=True)[1], indices)
    # an index of another model (other dimension)
    other = GalleryIndex(np.eye(3, 8, dtype=np.float32), ['a', 'b', 'c'])
    inf.set_gallery(other)
    with pytest.raises(ValueError, match='another model'):
        inf.search(gallery_index.features[:1])
    with pytest.raises(ValueError, match='another model'):
        inf.search(gallery_index.features[:1], rerank=True)


def test_checkpoint_that_does_not_fit(ckpt, tmp_path):
    state = torch.load(ckpt, weights_only=True)['state_dict']
    enc = sorted(k for k in state if k.startswith('encoder.backbone'))
    # a published model without the training-only memory loads
    published = {k: v for k, v in state.items() if not k.startswith('memory.')}
    path = str(tmp_path / 'published.pth')
    torch.save({'state_dict': published}, path)
    ReIDInferencer(CONFIG, pretrained=path, device='cpu')

    broken = dict(state)
    del broken[enc[0]]
    broken['encoder.backbone.extra.weight'] = torch.ones(2)
    wrong = next(k for k in enc if k.endswith('bn.weight'))
    broken[wrong] = torch.ones(3)
    path = str(tmp_path / 'broken.pth')
    torch.save({'state_dict': broken}, path)
    with pytest.raises(ValueError) as err:
        ReIDInferencer(CONFIG, pretrained=path, device='cpu')
    msg = str(err.value)
    assert 'does not fit' in msg and enc[0] in msg
    assert 'encoder.backbone.extra.weight' in msg and wrong in msg
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        ReIDInferencer(CONFIG, pretrained=str(tmp_path / 'nope.pth'))


def test_picture(inferencer, synthetic, gallery_index, tmp_path):
    inferencer.set_gallery(gallery_index)
    out = str(tmp_path / 'search.png')
    raw = inferencer(synthetic['queries'][:2],
                     topk=4,
                     out_file=out,
                     return_datasamples=True)
    assert osp.isfile(out)
    img = raw['visualization'][0]
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 200
    assert raw['indices'].shape == (2, 4)
    assert mmcv.imread(out).shape[:2] == img.shape[:2]


def test_model_zoo_names(ckpt, gallery_index):
    names = ReIDInferencer.list_models()
    assert 'cluster-contrast_mbv2_cuhk03' in names
    assert ReIDInferencer.list_models('*mbv2*') == sorted(n for n in names
                                                          if 'mbv2' in n)
    inf = ReIDInferencer('cluster-contrast_mbv2_cuhk03',
                         pretrained=ckpt,
                         device='cpu')
    feats, _, _ = inf.embed(gallery_index.paths[:3], show_progress=False)
    torch.testing.assert_close(feats,
                               gallery_index.features[:3],
                               atol=1e-5,
                               rtol=0)
    with pytest.raises(ValueError, match='did you mean'):
        ReIDInferencer('cluster-contrast_mbv2_cuhk3', pretrained=ckpt)
    with pytest.raises(ValueError, match='no published weights'):
        ReIDInferencer('cluster-contrast_mbv2_cuhk03', pretrained=True)


@pytest.fixture(scope='module')
def cuhk03_subset(tmp_path_factory) -> dict:
    """40 gallery + 5 query CUHK03 images, ids stripped from the names."""
    if not osp.isdir(osp.join(CUHK03, 'bounding_box_test')):
        pytest.skip('data/cuhk03_detected is absent (link the CUHK03 data to '
                    'run the real-image tests)')
    queries = sorted(glob.glob(osp.join(CUHK03, 'query', '*.jpg')))
    gallery = sorted(glob.glob(osp.join(CUHK03, 'bounding_box_test', '*.jpg')))
    chosen_q, pids = [], []
    for path in queries:
        pid = osp.basename(path).split('_')[0]
        if pid not in pids:
            pids.append(pid)
            chosen_q.append(path)
        if len(pids) == 5:
            break
    same = [p for p in gallery if osp.basename(p).split('_')[0] in pids]
    others = [p for p in gallery if p not in same]
    chosen_g = same[:25] + others[:40 - len(same[:25])]
    base = tmp_path_factory.mktemp('cuhk03_subset')
    return dict(gallery_dir=str(base / 'gallery'),
                gallery=copy_stripped(chosen_g, str(base / 'gallery'), 'img_'),
                queries=copy_stripped(chosen_q, str(base / 'query'), 'q_'))


def test_cuhk03_search_is_evaluation_ranking(inferencer, cuhk03_subset,
                                             tmp_path):
    index = inferencer.build_gallery(cuhk03_subset['gallery_dir'],
                                     show_progress=False)
    assert len(index) == 40 and index.pids is None
    inferencer.set_gallery(index)
    results = inferencer(cuhk03_subset['queries'], topk=10)
    q, _, _ = inferencer.embed(cuhk03_subset['queries'], show_progress=False)
    indices = torch.tensor([r['indices'] for r in results])
    assert_ranking_is_evaluate_rank(q, index.features, indices)

    # saved and reloaded: bit-identical features, identical results
    loaded = GalleryIndex.load(index.save(str(tmp_path / 'cuhk.npz')))
    assert torch.equal(loaded.features, index.features)
    inferencer.set_gallery(loaded)
    assert inferencer(cuhk03_subset['queries'], topk=10) == results
