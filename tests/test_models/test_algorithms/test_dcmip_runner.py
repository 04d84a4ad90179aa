# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DCMIP through the Runner, on the real ``dcmip_r50_market.py`` and
``dcmip_r50-code_market.py`` configs.

The config is shrunk (ResNet-18 of width 8, 32x16 images, the generated tiny
dataset) but keeps its model, loops and hooks. Two epochs with the instance
proxies from the second: both losses, both encoders evaluated; then a run
resumed after the first epoch ends with the same weights and proxies. The
``-code`` config's second stage (a new optimiser, the instance proxies)
starts at the second epoch, so the resumed run re-creates the optimiser
itself.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmreid_usl.utils import get_ori_model, register_all_modules
from tiny_config import TINY_PIPELINE

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TINY_TRAIN = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(16, 32)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomCrop', crop_size=(32, 16), padding=2),
    dict(type='ReIDRandomErasing', erase_prob=0.5),
    dict(type='PackReIDInputs'),
]


def _cfg(root: str,
         work_dir: str,
         max_epochs: int,
         config: str = 'dcmip_r50_market.py') -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs/dcmip', config))
    cfg.merge_from_dict({
        'model.encoder.backbone.depth': 18,
        'model.encoder.backbone.base_channels': 8,
        'model.encoder.backbone.init_cfg': None,
        'model.ins_start_epoch': 1,
        'model.instance_memory.num_instances': 4,
        'model.loss_mip.num_negatives': 10,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': 2,
        'default_hooks.pseudo_label.labeler.distance.k1': 10,
        'default_hooks.pseudo_label.labeler.distance.k2': 3,
        'default_hooks.pseudo_label.labeler.clusterer.eps': 0.6,
        'default_hooks.pseudo_label.labeler.clusterer.min_samples': 2,
        'default_hooks.logger.interval': 1,
    })
    for name in ('train_dataloader', 'cluster_dataloader', 'val_dataloader',
                 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.dataset.data_root = root
        loader.dataset.pipeline = TINY_PIPELINE
    cfg.train_dataloader.dataset.pipeline = TINY_TRAIN
    cfg.train_dataloader.pop('global_batch_size')  # a per-process batch
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.sampler.num_instances = 4
    cfg.train_dataloader.sampler.samples_per_epoch = 16
    if config == 'dcmip_r50-code_market.py':
        # stage 2 (a new optimiser) from epoch 1; BN groups of one id
        cfg.custom_hooks = [dict(type='OptimizerResetHook', epochs=[1])]
        cfg.param_scheduler = [
            dict(type='StepLR', step_size=1, gamma=0.1, begin=0, end=1),
            dict(type='StepLR', step_size=1, gamma=0.1, begin=1, end=2),
        ]
        cfg.model.bn_group_size = 4
        cfg.model.momentum_bn_group_size = 4
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg


class _StartEpoch(Hook):
    """Record the epoch training starts at, and the optimiser (number of
    parameters with Adam state, learning rate) at the start of each epoch,
    after any re-creation."""

    priority = 'LOW'

    def __init__(self):
        self.optim = {}

    def before_train(self, runner):
        self.epoch = runner.epoch

    def before_train_epoch(self, runner):
        opt = runner.optim_wrapper.optimizer
        self.optim[runner.epoch] = (len(opt.state),
                                    opt.param_groups[0]['lr'])


def _final_state(runner):
    model = get_ori_model(runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize('config',
                         ['dcmip_r50_market.py', 'dcmip_r50-code_market.py'])
def test_market_config_trains_evaluates_and_resumes(tiny_reid_root, tmp_path,
                                                    config):
    register_all_modules(init_default_scope=False)
    code = config == 'dcmip_r50-code_market.py'
    work = str(tmp_path / 'full')
    runner = Runner.from_cfg(_cfg(tiny_reid_root, work, 2, config))
    full_probe = _StartEpoch()
    runner.register_hook(full_probe)
    runner.train()
    model = get_ori_model(runner.model)
    assert type(model).__name__ == 'DCMIP'
    assert model.mip_active and int(model.mip_start) == 1
    assert int(model.label_epoch) == 1
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_dcp' in scalars and 'train/loss_mip' in scalars
    for key in ('val/student/reid/mAP', 'val/momentum/reid/mAP',
                'val/reid/mAP'):
        assert key in scalars, key
    full = _final_state(runner)
    state, lr = full_probe.optim[1]
    if code:  # stage 2: a new Adam at the config's learning rate
        assert state == 0 and lr == 3.5e-4
        assert model.momentum_shuffle_bn is False
    else:  # one Adam, x0.1 after 20 epochs only
        assert state > 0 and lr == 3.5e-4

    # resume after epoch 1 (before the instance proxies existed)
    resumed_work = str(tmp_path / 'resumed')
    Runner.from_cfg(_cfg(tiny_reid_root, resumed_work, 1, config)).train()
    cfg = _cfg(tiny_reid_root, resumed_work, 2, config)
    cfg.resume = True
    cfg.load_from = osp.join(resumed_work, 'epoch_1.pth')
    runner = Runner.from_cfg(cfg)
    probe = _StartEpoch()
    runner.register_hook(probe)
    runner.train()
    assert probe.epoch == 1  # resumed, not trained again from scratch
    assert probe.optim[1] == full_probe.optim[1]
    resumed = _final_state(runner)
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], msg=key)
