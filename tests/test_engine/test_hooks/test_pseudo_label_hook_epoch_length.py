# Copyright (c) mmreid_usl contributors. All rights reserved.
"""An epoch whose length follows the number of clusters (Theory's epoch,
``PseudoIdentitySampler(samples_per_epoch='clusters')``) through a real
Runner: the PseudoLabelHook sets the labels before MMEngine's
EpochBasedTrainLoop iterates the dataloader, ``max_iters`` follows, by-epoch
LR schedules and the logs count the right iterations."""
import copy
import glob
import json
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmreid_usl.clustering import BaseClusterer
from mmreid_usl.engine.hooks import PseudoLabelHook
from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils import register_all_modules

from tiny_config import TINY_PIPELINE, tiny_model

register_all_modules(init_default_scope=False)

#: clusters found at the 1st, 2nd and 3rd clustering
SCHEDULE = [6, 3, 4]


@TASK_UTILS.register_module(name='ScheduledClusterer', force=True)
class ScheduledClusterer(BaseClusterer):
    """Call c: ``schedule[c]`` clusters of 5 consecutive images; every
    other image is an outlier (-1)."""

    def __init__(self, schedule):
        self.schedule = list(schedule)
        self.calls = 0

    def cluster(self, distance, context):
        num = self.schedule[self.calls]
        self.calls += 1
        labels = np.full(len(context.features), -1, dtype=np.int64)
        labels[:5 * num] = np.arange(5 * num) // 5
        return labels


class _Record(Hook):
    """What the loop sees at the start and end of every epoch."""
    priority = 'LOW'  # after the PseudoLabelHook (ABOVE_NORMAL)

    def __init__(self):
        self.starts, self.ends = [], []

    def before_train_epoch(self, runner):
        self.starts.append(
            dict(iter=runner.iter, max_iters=runner.max_iters,
                 length=len(runner.train_dataloader),
                 lr=runner.optim_wrapper.get_lr()['lr'][0]))

    def after_train_epoch(self, runner):
        self.ends.append(runner.iter)


def _cfg(root, work_dir):
    data = dict(type='ReIDFolderDataset', data_root=root, split='train',
                pipeline=TINY_PIPELINE)
    loader = dict(
        batch_size=32,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate'),
        dataset=data)
    return Config(dict(
        default_scope='mmreid_usl',
        work_dir=work_dir,
        # a name of its own: MMLogger instances are global by name, and a
        # runner built in the same second by an earlier test would else
        # share its logger (and log file)
        experiment_name=f'epoch_length_{osp.basename(work_dir)}',
        model=dict(type='Theory', encoder=tiny_model()['encoder']),
        train_dataloader=dict(
            batch_size=8,
            num_workers=0,
            drop_last=True,
            sampler=dict(
                type='PseudoIdentitySampler',
                num_instances=4,
                samples_per_epoch='clusters',
                camera_mode='ignore'),
            collate_fn=dict(type='default_collate'),
            dataset=data),
        cluster_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=[
            dict(type='StepLR', step_size=1, gamma=0.5, by_epoch=True)
        ],
        train_cfg=dict(by_epoch=True, max_epochs=3),
        default_hooks=dict(
            pseudo_label=dict(
                type='PseudoLabelHook',
                interval=1,
                labeler=dict(
                    type='PseudoLabeler',
                    # Theory's source term on the raw features (the same
                    # images as "source"): exercises the raw extraction
                    distance=dict(
                        type='SourceAwareJaccardDistance', k1=6, k2=2,
                        source_feature='raw_fp16'),
                    clusterer=dict(type='ScheduledClusterer',
                                   schedule=SCHEDULE)),
                reference_dataloader=copy.deepcopy(loader)),
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        env_cfg=dict(cudnn_benchmark=False),
        log_level='INFO',
        randomness=dict(seed=0)))


def test_epoch_length_follows_the_clusters(tiny_reid_root, tmp_path):
    runner = Runner.from_cfg(_cfg(tiny_reid_root, str(tmp_path)))
    # before any label the epoch is empty
    assert len(runner.train_dataloader) == 0
    record = _Record()
    runner.register_hook(record)
    runner.train()
    # by hand: floor(C x K / batch) = floor(6*4/8), floor(3*4/8),
    # floor(4*4/8) = 3, 1, 2 iterations (drop_last)
    assert [s['length'] for s in record.starts] == [3, 1, 2]
    assert record.ends == [3, 4, 6] and runner.iter == 6
    # max_iters = done + remaining epochs x the new length: 0 + 3 x 3,
    # 3 + 2 x 1, 4 + 1 x 2 (exact in the last epoch)
    assert [s['max_iters'] for s in record.starts] == [9, 5, 6]
    assert runner.max_iters == 6
    # the by-epoch schedule steps once per epoch whatever the length
    assert [s['lr'] for s in record.starts] == [0.1, 0.05, 0.025]
    hook = next(h for h in runner.hooks if isinstance(h, PseudoLabelHook))
    assert [h['num_clusters'] for h in hook.history] == SCHEDULE
    # the raw-feature source term was computed and logged
    assert all('source_term_at_max' in h for h in hook.history)
    # the logs count the iterations of each epoch against its own length
    (log, ) = glob.glob(osp.join(runner.log_dir, '*.log'))
    text = open(log).read()
    for epoch, length in zip((1, 2, 3), (3, 1, 2)):
        assert f'Epoch(train) [{epoch}][{length}/{length}]' in text
    assert 'Epoch(train) [2][2/' not in text
    assert '-1 day' not in text  # no negative ETA
    scalars = [json.loads(line) for line in open(
        osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
        if '"loss"' in line]
    assert [s['step'] for s in scalars] == [1, 2, 3, 4, 5, 6]
    assert [s['epoch'] for s in scalars] == [1, 1, 1, 2, 3, 3]
