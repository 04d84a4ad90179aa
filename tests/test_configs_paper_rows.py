# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The Cluster Contrast configs for IBN-ResNet-50-a, InfoMap, PersonX and
VeRi-776 (the paper rows of Dai et al., ACCV 2022)."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmreid_usl.registry import DATASETS, MODELS, TASK_UTILS
from mmreid_usl.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CC = osp.join(REPO, 'configs', 'cluster_contrast')
DATA = osp.join(REPO, 'tests', 'data')
IBN_URL = ('https://github.com/XingangPan/IBN-Net/releases/download/v1.0/'
           'resnet50_ibn_a-d9d0bb7b.pth')
LOADERS = ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
           'test_dataloader')

register_all_modules(init_default_scope=False)


def _cfg(name):
    return Config.fromfile(osp.join(CC, name))


@pytest.mark.parametrize('dataset',
                         ['market', 'duke', 'msmt17', 'personx', 'veri776'])
def test_ibn_configs_only_swap_the_backbone(dataset):
    ibn = _cfg(f'cluster-contrast_r50-ibn_{dataset}.py').to_dict()
    r50 = _cfg(f'cluster-contrast_r50_{dataset}.py').to_dict()
    b_ibn = ibn['model']['encoder'].pop('backbone')
    b_r50 = r50['model']['encoder'].pop('backbone')
    assert ibn == r50
    assert b_ibn.pop('type') == 'ResNetIBN'
    assert b_ibn.pop('init_cfg') == dict(type='Pretrained', checkpoint=IBN_URL)
    b_r50.pop('type'), b_r50.pop('init_cfg')
    assert b_ibn == b_r50  # depth 50, last stride 1, out_indices


@pytest.mark.parametrize('dataset', ['market', 'msmt17'])
def test_infomap_configs(dataset):
    cfg = _cfg(f'cluster-contrast_r50-infomap_{dataset}.py').to_dict()
    base = _cfg(f'cluster-contrast_r50_{dataset}.py').to_dict()
    labeler = cfg['default_hooks']['pseudo_label']['labeler']
    base_labeler = base['default_hooks']['pseudo_label']['labeler']
    assert labeler.pop('distance') is None
    assert labeler.pop('clusterer') == dict(
        type='InfomapClusterer', k=15, min_sim=0.5, min_cluster_size=5)
    base_labeler.pop('distance'), base_labeler.pop('clusterer')
    assert cfg == base
    init_default_scope('mmreid_usl')
    labeler = TASK_UTILS.build(
        _cfg(f'cluster-contrast_r50-infomap_{dataset}.py').default_hooks.
        pseudo_label.labeler)
    assert labeler.distance is None
    assert (labeler.clusterer.k, labeler.clusterer.min_cluster_size) == (15, 5)


@pytest.mark.parametrize('name,base,dtype,root,fixture,size,iters,eps', [
    ('cluster-contrast_r50_personx.py', 'personx_usl.py', 'PersonX',
     'data/personx/', 'PersonX', (256, 128), 200, 0.7),
    ('cluster-contrast_r50_veri776.py', 'veri776_usl.py', 'VeRi776',
     'data/veri776/', 'VeRi', (224, 224), 400, 0.6),
])
def test_personx_veri_configs(name, base, dtype, root, fixture, size, iters,
                              eps):
    cfg = _cfg(name)
    data_base = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', base))
    market = _cfg('cluster-contrast_r50_market.py')
    for key in LOADERS:
        ds = cfg[key]['dataset']
        assert (ds['type'], ds['data_root']) == (dtype, root)
        # the leaf and the dataset base config hold the same loaders
        assert cfg[key].to_dict() == data_base[key].to_dict()
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'test'
    train_p = cfg.train_dataloader.dataset.pipeline
    resize = [t for t in train_p if t['type'] == 'Resize'][0]
    crop = [t for t in train_p if t['type'] == 'RandomCrop'][0]
    assert tuple(resize['scale'])[::-1] == size == tuple(crop['crop_size'])
    test_resize = cfg.test_dataloader.dataset.pipeline[1]
    assert tuple(test_resize['scale'])[::-1] == size
    if dtype == 'VeRi776':
        assert resize['backend'] == test_resize['backend'] == 'pillow'
    loader = cfg.train_dataloader
    assert loader.sampler.samples_per_epoch == iters * loader.batch_size
    clusterer = cfg.default_hooks.pseudo_label.labeler.clusterer
    assert clusterer.eps == eps
    # everything but data and eps is the Market config
    rest, ref = cfg.to_dict(), market.to_dict()
    for c in (rest, ref):
        for key in LOADERS:
            c.pop(key)
        c['default_hooks']['pseudo_label']['labeler']['clusterer'].pop('eps')
    assert rest == ref
    # the pipelines run on the fixture laid out like the real folders
    init_default_scope('mmreid_usl')
    for key in ('train_dataloader', 'test_dataloader'):
        ds_cfg = cfg[key]['dataset'].to_dict()
        ds_cfg['data_root'] = osp.join(DATA, fixture)
        out = DATASETS.build(ds_cfg)[0]
        assert tuple(out['inputs'].shape[1:]) == size


def test_ibn_market_config_loads_the_release(tmp_path, monkeypatch):
    pytest.importorskip('torchvision')
    from ibn_net_release import ibn_net_release_state_dict
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    hub = osp.join(torch.hub.get_dir(), 'checkpoints')
    import os
    os.makedirs(hub)
    release = ibn_net_release_state_dict(50)
    torch.save(release, osp.join(hub, osp.basename(IBN_URL)))
    cfg = _cfg('cluster-contrast_r50-ibn_market.py')
    init_default_scope('mmreid_usl')
    model = MODELS.build(cfg.model)
    model.init_weights()
    own = model.encoder.backbone.state_dict()
    keys = [k for k in release if not k.startswith('fc.')]
    assert len(keys) == len(own)
    for key in keys:
        assert torch.equal(own[key], release[key]), key
