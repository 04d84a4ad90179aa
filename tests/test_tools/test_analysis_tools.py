# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Tests of tools/analysis_tools, tools/misc and tools/model_converters."""
import glob
import hashlib
import importlib.util
import os.path as osp
import re

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from mmreid_usl.apis import init_model
from mmreid_usl.structures import PseudoLabelResult
from tiny_config import TINY_PIPELINE, tiny_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool(rel_path: str):
    """Import a script under ``tools/`` as a module."""
    name = osp.splitext(osp.basename(rel_path))[0]
    spec = importlib.util.spec_from_file_location(name,
                                                  osp.join(REPO, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cfg(root: str) -> Config:
    """A tiny Cluster Contrast model with a test dataloader over ``root``."""
    return Config(
        dict(
            default_scope='mmreid_usl',
            model=tiny_model(),
            test_dataloader=dict(
                batch_size=16,
                num_workers=0,
                sampler=dict(
                    type='DefaultSampler', shuffle=False, round_up=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='ReIDFolderDataset',
                    data_root=root,
                    split='test',
                    pipeline=TINY_PIPELINE))))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """(config file, checkpoint with training-only state) of a tiny run."""
    from mmreid_usl.datasets.synthetic import generate_synthetic_pedestrians
    work = tmp_path_factory.mktemp('tools')
    root = str(work / 'data')
    generate_synthetic_pedestrians(
        root, num_train_ids=2, num_test_ids=4, height=32, width=16)
    cfg = _cfg(root)
    cfg_file = str(work / 'tiny.py')
    cfg.dump(cfg_file)
    torch.manual_seed(0)
    model = init_model(cfg)
    feats = torch.nn.functional.normalize(torch.randn(10, 64), dim=1)
    model.set_pseudo_labels(
        PseudoLabelResult.from_labels(np.array([0, 0, 1, 1, -1] * 2), feats))
    optim = torch.optim.Adam(model.parameters())
    ckpt = str(work / 'epoch_3.pth')
    save_checkpoint(
        dict(
            meta=dict(epoch=3, seed=np.int64(1)),
            state_dict=model.state_dict(),
            optimizer=optim.state_dict(),
            message_hub=dict(log_scalars={}),
            param_schedulers=[]), ckpt)
    return cfg_file, ckpt


def test_rank_gallery_market_protocol():
    tool = _load_tool('tools/analysis_tools/visualize_ranklist.py')
    q = torch.tensor([[1., 0.]])
    g = torch.nn.functional.normalize(
        torch.tensor([[1., 0.], [1., .1], [1., .5], [0., 1.]]), dim=1)
    # g0: same pid AND camera as the query -> removed although nearest
    ranks = tool.rank_gallery(
        q,
        g,
        np.array([7]),
        np.array([7, 7, 3, 7]),
        np.array([0]),
        np.array([0, 1, 0, 2]),
        topk=5)
    np.testing.assert_array_equal(ranks[0]['index'], [1, 2, 3])
    np.testing.assert_array_equal(ranks[0]['match'], [True, False, True])
    # how many correct matches exist (issue 24, case 12: "2/3 correct" did
    # not say whether the gallery had 2 or 20)
    assert ranks[0]['num_matches'] == 2
    assert tool.rank_gallery(q, g, np.array([7]), np.array([7, 7, 3, 7]),
                             np.array([0]), np.array([0, 1, 0, 2]),
                             topk=1)[0]['num_matches'] == 2
    np.testing.assert_allclose(
        ranks[0]['dist'], ((q - g[[1, 2, 3]])**2).sum(1).numpy(), atol=1e-6)


def test_visualize_ranklist(trained, tmp_path):
    cfg_file, ckpt = trained
    tool = _load_tool('tools/analysis_tools/visualize_ranklist.py')
    out = str(tmp_path / 'vis' / 'ranklist.png')
    tool.main([
        cfg_file, ckpt, '--num-queries', '3', '--topk', '4', '--out', out,
        '--device', 'cpu', '--cfg-options', 'test_dataloader.batch_size=8'
    ])
    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    # green and red frames are drawn
    rgb = (img[..., :3] * 255).astype(int)
    red = ((rgb[..., 0] > 180) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60))
    green = ((rgb[..., 1] > 120) & (rgb[..., 0] < 60) & (rgb[..., 2] < 90))
    assert red.sum() + green.sum() > 500


def test_publish_model(trained, tmp_path):
    cfg_file, ckpt = trained
    tool = _load_tool('tools/model_converters/publish_model.py')
    tool.main([ckpt, str(tmp_path / 'tiny.pth')])
    files = glob.glob(str(tmp_path / 'tiny_*.pth'))
    assert len(files) == 1
    match = re.fullmatch(r'tiny_(\d{8})-([0-9a-f]{8})\.pth',
                         osp.basename(files[0]))
    assert match is not None
    with open(files[0], 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == match.group(2)

    published = torch.load(files[0], map_location='cpu', weights_only=True)
    assert set(published) == {'meta', 'state_dict'}
    keys = set(published['state_dict'])
    original = torch.load(ckpt, map_location='cpu', weights_only=True)
    dropped = set(original['state_dict']) - keys
    assert {'pseudo_labels', 'memory.features'} <= dropped
    assert not any(k.startswith('memory.') for k in keys)
    assert keys == {
        k
        for k in original['state_dict']
        if k.startswith(('encoder.', 'data_preprocessor.'))
    }
    # the published weights load back into the model
    model = init_model(cfg_file, files[0])
    for key in keys:
        torch.testing.assert_close(model.state_dict()[key],
                                   original['state_dict'][key])


def test_print_config(trained, capsys):
    cfg_file, _ = trained
    tool = _load_tool('tools/misc/print_config.py')
    tool.main([cfg_file, '--cfg-options', 'test_dataloader.batch_size=5'])
    out = capsys.readouterr().out
    assert out.startswith('Config:')
    assert 'batch_size=5' in out and 'ClusterContrast' in out
