# Copyright (c) mmreid_usl contributors. All rights reserved.
"""A Cluster Contrast config small enough for unit tests on CPU.

Shared by ``conftest.py`` and the scripts the distributed tests launch.
"""
import copy

from mmengine.config import Config

#: Test pipeline at 32x16 (H x W).
TINY_PIPELINE = [
    dict(type='LoadReIDImage'),
    dict(type='Resize', scale=(16, 32)),
    dict(type='PackReIDInputs')
]

#: ClusterContrast with a ResNet-18 of width 8 (64-d features).
TINY_MODEL = dict(
    type='ClusterContrast',
    encoder=dict(
        type='ReIDEncoder',
        backbone=dict(
            type='mmpretrain.ResNet',
            depth=18,
            base_channels=8,
            strides=(1, 2, 2, 1),
            out_indices=(3, )),
        pooling=dict(type='mmpretrain.GlobalAveragePooling'),
        neck=dict(type='BNNeck')),
    memory=dict(type='ClusterMemory', old_weight=0.1))


def tiny_model() -> dict:
    """A fresh copy of :data:`TINY_MODEL` (configs are mutated by users)."""
    return copy.deepcopy(TINY_MODEL)


def tiny_cfg(root: str,
             work_dir: str,
             max_epochs: int = 2,
             iters: int = 3,
             eps: float = 0.6,
             min_samples: int = 2,
             interval: int = 1,
             with_val: bool = False) -> Config:
    """A Cluster Contrast config small enough for unit tests on CPU."""
    data = dict(
        type='ReIDFolderDataset', data_root=root, pipeline=TINY_PIPELINE)
    loader = dict(
        batch_size=32,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate'))
    cfg = dict(
        default_scope='mmreid_usl',
        work_dir=work_dir,
        model=tiny_model(),
        train_dataloader=dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(
                type='PseudoIdentitySampler',
                num_instances=4,
                samples_per_epoch=iters * 8),
            collate_fn=dict(type='default_collate'),
            dataset=dict(data, split='train')),
        cluster_dataloader=dict(loader, dataset=dict(data, split='train')),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=3.5e-4)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(
            pseudo_label=dict(
                type='PseudoLabelHook',
                interval=interval,
                labeler=dict(
                    type='PseudoLabeler',
                    distance=dict(type='JaccardDistance', k1=10, k2=3),
                    clusterer=dict(
                        type='DBSCANClusterer',
                        eps=eps,
                        min_samples=min_samples))),
            checkpoint=dict(type='CheckpointHook', interval=1),
            sync_buffers=dict(type='SyncNormBuffersHook'),
            logger=dict(type='LoggerHook', interval=1)),
        env_cfg=dict(cudnn_benchmark=False),
        log_level='WARNING',
        randomness=dict(seed=0))
    if with_val:
        cfg.update(
            val_dataloader=dict(loader, dataset=dict(data, split='test')),
            val_evaluator=dict(type='ReIDMetric'),
            val_cfg=dict())
    return Config(cfg)


def theory_test_cfg(root: str) -> dict:
    """A Theory model with the tiny encoder and a test loader over
    ``root`` (split ``test``): enough for the analysis tools."""
    return dict(
        default_scope='mmreid_usl',
        model=dict(type='Theory', encoder=tiny_model()['encoder']),
        test_dataloader=dict(
            batch_size=16,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='ReIDFolderDataset',
                data_root=root,
                split='test',
                pipeline=TINY_PIPELINE)))
