# Copyright (c) mmreid_usl contributors. All rights reserved.
"""DCMIP through the Runner, on the real ``dcmip_r50_market.py`` config.

The config is shrunk (ResNet-18 of width 8, 32x16 images, the generated tiny
dataset) but keeps its model, loops and hooks. Two epochs with the instance
proxies from the second: both losses, both encoders evaluated; then a run
resumed after the first epoch ends with the same weights and proxies.
"""
import os.path as osp

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


def _cfg(root: str, work_dir: str, max_epochs: int) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs/dcmip/dcmip_r50_market.py'))
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
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg


class _StartEpoch(Hook):
    """Record the epoch training starts at."""

    def before_train(self, runner):
        self.epoch = runner.epoch


def _final_state(runner):
    model = get_ori_model(runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_market_config_trains_evaluates_and_resumes(tiny_reid_root, tmp_path):
    register_all_modules(init_default_scope=False)
    work = str(tmp_path / 'full')
    runner = Runner.from_cfg(_cfg(tiny_reid_root, work, max_epochs=2))
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

    # resume after epoch 1 (before the instance proxies existed)
    resumed_work = str(tmp_path / 'resumed')
    Runner.from_cfg(_cfg(tiny_reid_root, resumed_work, max_epochs=1)).train()
    cfg = _cfg(tiny_reid_root, resumed_work, max_epochs=2)
    cfg.resume = True
    cfg.load_from = osp.join(resumed_work, 'epoch_1.pth')
    runner = Runner.from_cfg(cfg)
    probe = _StartEpoch()
    runner.register_hook(probe)
    runner.train()
    assert probe.epoch == 1  # resumed, not trained again from scratch
    resumed = _final_state(runner)
    assert full.keys() == resumed.keys()
    for key in full:
        torch.testing.assert_close(resumed[key], full[key], msg=key)
