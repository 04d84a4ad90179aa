# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Worker for ``test_distributed.py``: train the tiny config on N processes.

Run as ``python -m torch.distributed.run --nproc_per_node N`` would run it
(gloo on CPU): ``test_distributed.py`` forks its ranks from the fork server
(``dist_spawn.spawn``) with the launcher's environment. Every rank saves what must agree across ranks — pseudo-labels, memory,
parameters, BN running statistics — and the sample indices it trained on.
"""
import os.path as osp
import sys

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from tiny_config import tiny_cfg  # noqa: E402

from mmreid_usl.engine.hooks import RankConsistencyHook  # noqa: E402
from mmreid_usl.engine.hooks.sync_norm_buffers_hook import \
    norm_running_stats  # noqa: E402
from mmreid_usl.utils import (get_ori_model, register_all_modules,  # noqa
                              setup_cpu_distributed)


class DumpStateHook(Hook):
    """Save each rank's view of the training state after every epoch."""

    priority = 'LOWEST'

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.batches = []
        self.result = None

    def before_run(self, runner):
        # keep the PseudoLabelResult this rank built (hook -> model)
        model = get_ori_model(runner.model)
        set_pseudo_labels = model.set_pseudo_labels

        def record(result):
            self.result = result
            return set_pseudo_labels(result)

        model.set_pseudo_labels = record

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.batches.append(
            [s.sample_idx for s in data_batch['data_samples']])

    def after_train_epoch(self, runner):
        model = get_ori_model(runner.model)
        torch.save(
            dict(
                labels=model.pseudo_labels.clone(),
                memory=model.memory.features.clone(),
                params={
                    k: v.detach().clone()
                    for k, v in model.named_parameters()
                },
                bn_stats=[
                    b.clone() for b in norm_running_stats(model.encoder)
                ],
                batches=self.batches,
                result=None if self.result is None else dict(
                    fields=sorted(vars(self.result)),
                    labels=self.result.labels.clone(),
                    num_clusters=self.result.num_clusters,
                    num_outliers=self.result.num_outliers,
                    centroids=self.result.centroids.clone(),
                    camids=self.result.camids.clone(),
                    epoch=self.result.epoch,
                    labels_from=self.result.labels_from,
                    banks_gathered=self.result.banks_gathered,
                    # several ranks label from row blocks: no bank rows
                    bank=self.result.bank().clone()
                    if self.result.banks_gathered else None)),
            osp.join(self.out_dir,
                     f'rank{get_rank()}_epoch{runner.epoch}.pth'))
        self.batches = []


def main():
    root, work_dir, launcher = sys.argv[1:4]
    register_all_modules(init_default_scope=False)
    cfg = tiny_cfg(root, work_dir, max_epochs=2, iters=2)
    cfg.launcher = launcher
    cfg.log_level = 'INFO'  # RankConsistencyHook's line is checked
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(DumpStateHook(work_dir))
    # raises if any parameter or buffer differs between the ranks
    runner.register_hook(RankConsistencyHook(), priority='LOWEST')
    runner.train()


if __name__ == '__main__':
    main()
