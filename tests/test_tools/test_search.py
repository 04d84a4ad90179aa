# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/search.py and tools/extract_features.py."""
import glob
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmreid_usl.apis import GalleryIndex, ReIDInferencer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_apis'))
from test_inferencer import CONFIG, copy_stripped, make_checkpoint  # noqa


def _load_tool(rel_path: str):
    """Import a script under ``tools/`` as a module."""
    name = osp.splitext(osp.basename(rel_path))[0]
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(REPO, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> dict:
    from mmreid_usl.datasets.synthetic import generate_synthetic_pedestrians
    base = tmp_path_factory.mktemp('search_tool')
    root = str(base / 'market')
    generate_synthetic_pedestrians(root,
                                   num_train_ids=1,
                                   num_test_ids=5,
                                   height=64,
                                   width=32,
                                   seed=5)
    market_gallery = osp.join(root, 'bounding_box_test')
    stripped = str(base / 'stripped')
    copy_stripped(sorted(glob.glob(osp.join(market_gallery, '*.jpg'))),
                  stripped,
                  'cam_crop_',
                  nested=True)
    return dict(base=base,
                ckpt=make_checkpoint(str(base / 'cc.pth'), seed=1),
                market_gallery=market_gallery,
                stripped=stripped,
                queries=sorted(glob.glob(osp.join(root, 'query',
                                                  '*.jpg')))[:3])


def test_extract_features_npz(data, tmp_path):
    tool = _load_tool('tools/extract_features.py')
    out = tool.main([
        CONFIG, data['ckpt'], '--folder', data['market_gallery'], '--out',
        str(tmp_path / 'feats'), '--batch-size', '8', '--device', 'cpu'
    ])
    assert out == str(tmp_path / 'feats.npz')
    with np.load(out, allow_pickle=False) as npz:
        feats, paths = npz['features'], npz['paths'].tolist()
        pids, camids = npz['pids'], npz['camids']
        meta = json.loads(str(npz['meta']))
    names = [osp.basename(p) for p in paths]
    assert paths == sorted(glob.glob(osp.join(data['market_gallery'],
                                              '*.jpg')))
    assert feats.dtype == np.float32 and feats.shape == (len(paths), 1280)
    assert pids.tolist() == [int(n[:4]) for n in names]
    assert camids.tolist() == [int(n.split('_c')[1][0]) - 1 for n in names]
    assert meta['checkpoint'] == data['ckpt'] and meta['encoder'] == \
        'student'
    # reloads bit-identical, and equals a fresh embedding
    index = GalleryIndex.load(out)
    assert np.array_equal(index.features.numpy(), feats)
    inferencer = ReIDInferencer(CONFIG,
                                pretrained=data['ckpt'],
                                device='cpu',
                                batch_size=8)
    fresh, _, _ = inferencer.embed(paths, show_progress=False)
    torch.testing.assert_close(fresh, index.features, atol=1e-6, rtol=0)

    # names without ids: no pids / camids, recursive folder
    out = tool.main([
        CONFIG, data['ckpt'], '--folder', data['stripped'], '--out',
        str(tmp_path / 'stripped.npz'), '--device', 'cpu'
    ])
    with np.load(out, allow_pickle=False) as npz:
        assert 'pids' not in npz and 'camids' not in npz
        assert len(npz['paths']) == len(paths)


def test_search_tool_saved_index_and_picture(data, tmp_path):
    tool = _load_tool('tools/search.py')
    common = [
        CONFIG, data['ckpt'], '--query', *data['queries'], '--topk', '5',
        '--device', 'cpu'
    ]
    res1 = tool.main(common + [
        '--gallery', data['stripped'], '--save-index',
        str(tmp_path / 'gallery.npz'), '--out',
        str(tmp_path / 'r1.json'), '--show',
        str(tmp_path / 'search.png')
    ])
    assert osp.isfile(tmp_path / 'search.png')
    with open(tmp_path / 'r1.json') as f:
        saved = json.load(f)
    assert saved == res1 and len(saved) == 3
    for res in saved:
        assert len(res['paths']) == len(res['scores']) == 5
        assert res['scores'] == sorted(res['scores'], reverse=True)
        assert all(p.startswith(data['stripped']) for p in res['paths'])
    # the saved index answers exactly as the freshly embedded gallery
    res2 = tool.main(common + ['--gallery', str(tmp_path / 'gallery.npz')])
    assert res2 == res1
    # the torch backend ranks the same (scores equal up to float rounding)
    res3 = tool.main(
        common +
        ['--gallery',
         str(tmp_path / 'gallery.npz'), '--backend', 'torch'])
    for a, b in zip(res1, res3):
        assert a['indices'] == b['indices']
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-5)
    with pytest.raises(ValueError, match='topk'):
        tool.main(common[:2] + [
            '--query', data['queries'][0], '--gallery', data['stripped'],
            '--topk', '0'
        ])


@pytest.mark.slow
def test_search_cli(data, tmp_path):
    out = str(tmp_path / 'cli.json')
    proc = subprocess.run([
        sys.executable, 'tools/search.py', CONFIG, data['ckpt'], '--query',
        data['queries'][0], '--gallery', data['market_gallery'], '--topk', '3',
        '--out', out, '--device', 'cpu'
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(out) as f:
        res = json.load(f)[0]
    assert res['query'] == data['queries'][0] and len(res['paths']) == 3
    assert len(res['pids']) == 3  # Market names carry ids


def test_a_bad_query_is_named_before_the_gallery_is_embedded(
        data, tmp_path, monkeypatch):
    """Issue 24, case 12: a bad query was reported only after the whole
    gallery had been embedded."""
    tool = _load_tool('tools/search.py')
    bad = tmp_path / 'person.jpg'
    bad.write_text('not an image')

    def embed_gallery(self, *args, **kwargs):
        raise AssertionError('the gallery was embedded first')

    monkeypatch.setattr(ReIDInferencer, 'set_gallery', embed_gallery)
    argv = [
        CONFIG, data['ckpt'], '--gallery', data['market_gallery'],
        '--device', 'cpu', '--query'
    ]
    with pytest.raises(ValueError, match='person.jpg'):
        tool.main(argv + [data['queries'][0], str(bad)])
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        tool.main(argv + [str(tmp_path / 'missing.jpg')])
