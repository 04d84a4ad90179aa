# Copyright (c) mmreid_usl contributors. All rights reserved.
"""ICE resume through the Runner, on the real ``ice_r50_market.py`` config.

One epoch is trained and checkpointed; a second Runner resumes from it. Before
its first iteration the student, the momentum encoder (parameters, own BN
statistics, EMA step count) and the Adam state equal the checkpoint, and the
pseudo-labels and camera proxies were rebuilt by a fresh clustering.
"""
import copy
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmreid_usl.utils import get_ori_model, register_all_modules
from tiny_config import TINY_PIPELINE

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TINY_VIEW = [
    dict(type='Resize', scale=(16, 32)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]


def _ice_cfg(root: str, work_dir: str, max_epochs: int) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs/ice/ice_r50_market.py'))
    cfg.merge_from_dict({
        'model.encoder.backbone.depth': 18,
        'model.encoder.backbone.base_channels': 8,
        'model.encoder.backbone.init_cfg': None,
        'train_cfg.max_epochs': max_epochs,
        'train_cfg.val_interval': 100,
        'default_hooks.pseudo_label.labeler.distance.k1': 10,
        'default_hooks.pseudo_label.labeler.distance.k2': 3,
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
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='LoadReIDImage'),
        dict(type='MultiView', transforms=[TINY_VIEW, [], TINY_VIEW]),
        dict(type='PackReIDInputs'),
    ]
    cfg.train_dataloader.pop('global_batch_size')  # a per-process batch
    cfg.train_dataloader.batch_size = 8
    cfg.train_dataloader.sampler.samples_per_epoch = 16
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    return cfg


class _Probe(Hook):
    """Snapshot the state when training starts and count re-clusterings."""

    priority = 'LOWEST'

    def __init__(self):
        self.at_start = None
        self.clusterings_before_first_iter = None
        self.proxies_at_first_iter = None
        self.num_set_pseudo_labels = 0

    def before_train(self, runner):
        model = get_ori_model(runner.model)
        self.at_start = dict(
            state={
                k: v.detach().clone()
                for k, v in model.state_dict().items()
            },
            optimizer=copy.deepcopy(
                runner.optim_wrapper.optimizer.state_dict()),
            epoch=runner.epoch,
            iter=runner.iter)
        original = model.set_pseudo_labels

        def counting(result):
            self.num_set_pseudo_labels += 1
            return original(result)

        model.set_pseudo_labels = counting

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.clusterings_before_first_iter is None:
            model = get_ori_model(runner.model)
            self.clusterings_before_first_iter = self.num_set_pseudo_labels
            self.proxies_at_first_iter = model.proxy_memory.num_clusters


def test_resume_restores_both_encoders_and_reclusters(tiny_reid_root,
                                                      tmp_path):
    register_all_modules(init_default_scope=False)
    work = str(tmp_path)
    Runner.from_cfg(_ice_cfg(tiny_reid_root, work, max_epochs=1)).train()
    ckpt_path = osp.join(work, 'epoch_1.pth')
    ckpt = torch.load(ckpt_path, map_location='cpu')

    cfg = _ice_cfg(tiny_reid_root, work, max_epochs=2)
    cfg.resume = True
    cfg.load_from = ckpt_path
    runner = Runner.from_cfg(cfg)
    probe = _Probe()
    runner.register_hook(probe)
    runner.train()

    start = probe.at_start
    assert start['epoch'] == 1 and start['iter'] == 2
    saved = ckpt['state_dict']
    prefixes = ('encoder.', 'momentum_encoder.')
    checked = [k for k in saved if k.startswith(prefixes)]
    assert any(k.startswith('momentum_encoder.module.') and 'running_mean' in k
               for k in checked)
    assert 'momentum_encoder.steps' in checked
    for key in checked:
        assert torch.equal(start['state'][key], saved[key]), key
    # the momentum encoder is not a copy of the student
    assert not torch.equal(
        saved['encoder.backbone.conv1.weight'],
        saved['momentum_encoder.module.backbone.conv1.weight'])
    # Adam moments of every trainable tensor
    opt_saved, opt_now = ckpt['optimizer']['state'], start['optimizer'][
        'state']
    assert len(opt_saved) > 0 and opt_saved.keys() == opt_now.keys()
    for idx in opt_saved:
        for name in ('exp_avg', 'exp_avg_sq', 'step'):
            assert torch.equal(
                torch.as_tensor(opt_saved[idx][name]),
                torch.as_tensor(opt_now[idx][name])), (idx, name)
    # the resumed epoch re-clustered (once) before its first iteration
    assert probe.clusterings_before_first_iter == 1
    assert probe.proxies_at_first_iter > 0
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
