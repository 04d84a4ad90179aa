# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Re-clustering of the training set at the start of every epoch."""
import time
import warnings
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch.utils.data import DataLoader

from mmreid_usl.apis import extract_features
from mmreid_usl.registry import HOOKS, TASK_UTILS
from mmreid_usl.utils.dist import all_gather_cat
from mmreid_usl.utils.misc import get_ori_model


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Cluster the training set and hand the pseudo-labels to the training.

    At ``before_train_epoch`` of every ``interval``-th epoch
    (``../shared/docs/architecture.md`` §3.3(b)):

    1. every rank extracts L2-normalised features of its shard of the
       cluster dataloader (train split, test pipeline) with a progress bar,
       and the shards are all-gathered into ``(N, D)`` in dataset order;
    2. rank 0 alone computes the distance (k-reciprocal Jaccard by default)
       and runs the clusterer (DBSCAN by default), then broadcasts the
       :class:`PseudoLabelResult`, so every rank holds identical labels;
    3. ``model.set_pseudo_labels(result)`` rebuilds the memories and
       ``sampler.set_labels(labels)`` the P x K sampler — the dataset is
       never mutated;
    4. the number of clusters and outliers, the clustering time and — when
       the dataset has true ids — NMI/ARI against them are logged
       (diagnostics only; true ids never reach the training).

    A clustering that yields zero clusters does not crash: a warning is
    logged and the epoch has no training iterations.

    On resume in an epoch that is not re-clustered (``interval > 1``) the
    sampler gets the labels restored from the checkpoint.

    Args:
        distance (dict, optional): ``TASK_UTILS`` config of the distance, e.g.
            ``dict(type='JaccardDistance', k1=30, k2=6)``; None lets the
            clusterer work on the features directly.
        clusterer (dict): ``TASK_UTILS`` config of the clusterer, e.g.
            ``dict(type='DBSCANClusterer', eps=0.6, min_samples=4)``.
        feature_source (str): Encoder whose features are clustered:
            ``'student'`` or ``'momentum'`` (ICE, DCMIP).
        interval (int): Re-cluster every ``interval`` epochs. Defaults to 1.
        dataloader (dict | DataLoader, optional): The cluster dataloader.
            Defaults to the config's top-level ``cluster_dataloader``.
        log_diagnostics (bool): Log NMI/ARI against the true ids when the
            dataset has them. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 distance: Optional[dict] = dict(
                     type='JaccardDistance', k1=30, k2=6),
                 clusterer: dict = dict(
                     type='DBSCANClusterer', eps=0.6, min_samples=4),
                 feature_source: str = 'student',
                 interval: int = 1,
                 dataloader: Optional[Union[dict, DataLoader]] = None,
                 log_diagnostics: bool = True):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.distance = TASK_UTILS.build(distance) if isinstance(
            distance, dict) else distance
        self.clusterer = TASK_UTILS.build(clusterer) if isinstance(
            clusterer, dict) else clusterer
        # DBSCAN only looks at pairs within eps: let a sparse distance that
        # has the default max_distance (1, every overlapping pair) keep just
        # those. The labels are identical; memory at 200k images drops ~10x.
        eps = getattr(self.clusterer, 'eps', None)
        if eps is not None and eps < 1 and getattr(
                self.distance, 'max_distance', None) == 1.0:
            self.distance.max_distance = min(1.0, eps + 1e-3)
        self.feature_source = feature_source
        self.interval = interval
        self._dataloader = dataloader
        self.log_diagnostics = log_diagnostics
        self.history = []

    # ------------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Build the cluster dataloader."""
        if isinstance(self._dataloader, DataLoader):
            return
        cfg = self._dataloader
        if cfg is None:
            cfg = runner.cfg.get('cluster_dataloader')
        if cfg is None:
            raise ValueError(
                'PseudoLabelHook needs a dataloader over the training images '
                'with the test pipeline: set `cluster_dataloader` in the '
                'config or pass `dataloader=` to the hook.')
        self._dataloader = runner.build_dataloader(cfg, seed=runner.seed)

    def before_train_epoch(self, runner) -> None:
        """Re-cluster if this epoch is due; restore labels on resume."""
        model = get_ori_model(runner.model)
        sampler = runner.train_dataloader.sampler
        due = (runner.epoch % self.interval == 0
               or model.pseudo_labels.numel() == 0)
        if due:
            result = self.cluster(runner)
            model.set_pseudo_labels(result)
            sampler.set_labels(result.labels.cpu())
        elif getattr(sampler, 'labels', None) is None:
            sampler.set_labels(model.pseudo_labels.cpu())

    # ------------------------------------------------------------------
    @torch.no_grad()
    def extract_features(self, runner) -> Tuple[torch.Tensor, torch.Tensor]:
        """All-gathered L2-normalised features of the training set.

        Returns:
            tuple[Tensor, Tensor]: ``(N, D)`` features in dataset order
            (identical on every rank) and the ``(N, )`` camera ids.
        """
        dataset = self._dataloader.dataset
        num_samples = len(dataset)
        # rank 0 shows the progress of its own shard
        feats, indices = extract_features(
            runner.model, self._dataloader, source=self.feature_source)
        feats = all_gather_cat(feats)
        indices = all_gather_cat(indices)
        if indices.numel() != num_samples or not torch.equal(
                torch.sort(indices).values,
                torch.arange(num_samples, device=indices.device)):
            raise RuntimeError(
                f'Cluster dataloader returned {indices.numel()} samples for '
                f'a dataset of {num_samples}; its sampler must visit every '
                'image exactly once (DefaultSampler(shuffle=False, '
                'round_up=False)).')
        ordered = torch.empty_like(feats)
        ordered[indices] = feats
        camids = torch.as_tensor(np.asarray(dataset.get_camids()),
                                 dtype=torch.long)
        return ordered, camids

    def cluster(self, runner):
        """Extract, cluster on rank 0, broadcast; returns the result."""
        from mmreid_usl.clustering import PseudoLabelResult
        train_set = runner.train_dataloader.dataset
        if len(self._dataloader.dataset) != len(train_set):
            raise RuntimeError(
                f'cluster_dataloader has {len(self._dataloader.dataset)} '
                f'images but train_dataloader has {len(train_set)}; both '
                'must be the same training split.')
        start = time.perf_counter()
        feats, camids = self.extract_features(runner)
        extract_s = time.perf_counter() - start

        payload = [None]
        if dist.is_main_process():
            start = time.perf_counter()
            dist_mat = self.distance(feats) if self.distance is not None \
                else None
            labels = self.clusterer(feats, dist_mat)
            result = PseudoLabelResult.from_labels(feats.cpu(), labels)
            payload = [(result.labels, result.centroids, result.num_clusters,
                        result.num_outliers, time.perf_counter() - start)]
        dist.broadcast_object_list(payload, src=0)
        labels, centroids, num_clusters, num_outliers, cluster_s = payload[0]
        result = PseudoLabelResult(
            labels=labels,
            num_clusters=num_clusters,
            num_outliers=num_outliers,
            centroids=centroids.to(feats.device),
            extras=dict(features=feats, camids=camids.to(feats.device)))
        self._log(runner, result, extract_s, cluster_s)
        return result

    def _log(self, runner, result, extract_s: float, cluster_s: float) -> None:
        """Log cluster statistics to the logger, message hub and visualizer."""
        n = len(result.labels)
        stats: Dict[str, float] = dict(
            num_clusters=result.num_clusters,
            num_outliers=result.num_outliers,
            outlier_ratio=result.num_outliers / max(n, 1),
            extract_time=extract_s,
            cluster_time=cluster_s)
        dataset = self._dataloader.dataset
        true_ids = getattr(dataset, 'get_pids', None)
        if self.log_diagnostics and true_ids is not None \
                and result.num_clusters > 0:
            # outliers count as singletons in nmi/ari (cluster_stats)
            pids = np.asarray(true_ids())
            quality = result.cluster_stats(pids)
            for key in ('nmi', 'ari', 'ari_clustered'):
                stats[key] = quality[key]
            stats['num_true_ids'] = int(len(np.unique(pids)))
        if result.num_clusters == 0:
            warnings.warn(
                f'Epoch {runner.epoch}: clustering produced zero clusters '
                f'({n} outliers); this epoch has no training iterations. '
                'Check eps / min_samples of the clusterer.')
        msg = ', '.join(f'{k}: {v:.4f}' if isinstance(v, float) else
                        f'{k}: {v}' for k, v in stats.items())
        print_log(f'Pseudo-labels at epoch {runner.epoch}: {msg}',
                  logger='current')
        # the counts also show on every training log line
        for key in ('num_clusters', 'num_outliers'):
            runner.message_hub.update_scalar(f'train/pseudo_label/{key}',
                                             stats[key])
        runner.visualizer.add_scalars(
            {f'pseudo_label/{k}': v
             for k, v in stats.items()}, step=runner.epoch)
        self.history.append(dict(epoch=runner.epoch, **stats))
