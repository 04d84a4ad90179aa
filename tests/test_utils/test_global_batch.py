# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid_usl.utils.global_batch import resolve_global_batch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _loader():
    return dict(
        global_batch_size=256,
        batch_size=64,
        sampler=dict(
            type='PseudoIdentitySampler',
            num_instances=16,
            samples_per_epoch=200 * 64))


@pytest.mark.parametrize('world', [1, 2, 4, 8])
def test_same_global_batch_and_iterations_on_any_world_size(world):
    cfg, msg = resolve_global_batch(_loader(), world, bn_group_size=64)
    assert cfg['batch_size'] * world == 256
    assert cfg['sampler']['samples_per_epoch'] // cfg['batch_size'] == 200
    assert 'global_batch_size' not in cfg
    assert f'{256 // world} images per process' in msg
    assert f'({max(1, 256 // world // 64)} per process)' in msg


@pytest.mark.parametrize('length', ['clusters', 'dataset', None])
def test_a_named_epoch_length_is_left_to_the_sampler(length):
    # the sampler divides #clusters x K (or the dataset) by the processes
    loader = _loader()
    loader['sampler']['samples_per_epoch'] = length
    cfg, msg = resolve_global_batch(loader, 4)
    assert cfg['batch_size'] == 64
    assert cfg['sampler']['samples_per_epoch'] == length
    assert 'iterations per epoch' not in msg


def test_without_global_batch_nothing_changes():
    loader = dict(batch_size=32, sampler=dict(samples_per_epoch=320))
    cfg, msg = resolve_global_batch(loader, 4)
    assert cfg == loader and msg is None


def test_bad_splits_name_the_problem():
    with pytest.raises(ValueError, match='does not split over 3'):
        resolve_global_batch(_loader(), 3)
    with pytest.raises(ValueError, match='num_instances=16'):
        resolve_global_batch(_loader(), 32)  # 8 images per process
    with pytest.raises(ValueError, match='bn_group_size=48'):
        resolve_global_batch(_loader(), 1, bn_group_size=48)


@pytest.mark.parametrize('path,total,group', [
    ('configs/cluster_contrast/cluster-contrast_r50_market.py', 256, 64),
    ('configs/ice/ice_r50_market.py', 32, 8),
    ('configs/dcmip/dcmip_r50_market.py', 256, 64),
])
def test_paper_configs_give_a_global_batch_and_bn_groups(path, total, group):
    """`tools/train.py` (1 process) and `dist_train.sh ... 4` train the same
    global P x K with BN groups of the official per-GPU batch."""
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.runner_type == 'ReIDRunner'
    loader = cfg.train_dataloader.to_dict()
    assert loader['global_batch_size'] == total
    assert cfg.model.bn_group_size == group
    one, _ = resolve_global_batch(loader, 1, group)
    four, _ = resolve_global_batch(loader, 4, group)
    assert one['batch_size'] == total and four['batch_size'] * 4 == total
    assert one['batch_size'] // group == 4 and four['batch_size'] == group
    iters = [
        c['sampler']['samples_per_epoch'] // c['batch_size']
        for c in (one, four)
    ]
    assert iters[0] == iters[1]


def test_a_batch_size_override_voided_by_the_global_batch_is_an_error():
    """Issue 24, case 6: train_dataloader.batch_size=16 on a paper config
    kept the global batch of 256 and made the epoch 16x longer."""
    from mmreid_usl.utils.cfg_options import ConfigOptionError
    from mmreid_usl.utils.global_batch import check_batch_size_overrides
    cfg = Config(dict(train_dataloader=_loader(), val_dataloader=dict(
        batch_size=64)))
    with pytest.raises(ConfigOptionError) as err:
        check_batch_size_overrides(cfg, {'train_dataloader.batch_size': 16})
    msg = str(err.value)
    assert 'train_dataloader.global_batch_size=256' in msg
    assert 'use train_dataloader.global_batch_size=16' in msg
    assert 'num_instances=16' in msg
    assert 'train_dataloader.global_batch_size=None' in msg
    # accepted: together with the global batch, or where there is none
    check_batch_size_overrides(cfg, {
        'train_dataloader.batch_size': 16,
        'train_dataloader.global_batch_size': None
    })
    check_batch_size_overrides(cfg, {'val_dataloader.batch_size': 16})
    check_batch_size_overrides(cfg, {'train_dataloader.num_workers': 1})
    check_batch_size_overrides(cfg, None)
