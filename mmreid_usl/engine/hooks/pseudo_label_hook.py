# Copyright (c) mmreid_usl contributors. All rights reserved.
"""(Re-)labelling of the training set at the start of every epoch."""
import time
from dataclasses import replace
from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader

from mmreid_usl.clustering import (LabelingContext, camera_stats,
                                   cluster_stats)
from mmreid_usl.clustering.sharded import (knn_shard_bounds,
                                           redistribute_rows)
from mmreid_usl.registry import HOOKS, TASK_UTILS
from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils.build import build_module
from mmreid_usl.utils.dist import all_gather_cat
from mmreid_usl.utils.misc import get_ori_model
from ..feature_extraction import extract_features

#: Key of the labeler state (e.g. a once-computed eps) in checkpoints.
CKPT_KEY = 'pseudo_labeler'


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Label the training set and hand the result to the model and sampler.

    At ``before_train_epoch`` of every ``interval``-th epoch:

    1. every rank extracts the L2-normalised feature banks the model asks for
       (``model.pseudo_label_banks``: the clustered encoder's, plus those its
       memories read) from its shard of the cluster dataloader (train split,
       test pipeline), with a progress bar, and the shards are all-gathered
       into ``(N, D)`` banks in dataset order; likewise the reference bank of
       an optional ``reference_dataloader`` (e.g. the labelled source domain
       of domain adaptation). When the labeler's distance reads raw features
       (``labeler.needs_raw_features``, e.g. Theory's source term) the
       clustered and reference banks are extracted unnormalised, handed over
       as such too, and normalised for everything else;
    2. with several ranks and a labeler that shards this labelling
       (``PseudoLabeler(sharded='auto')``, the default: a plain Jaccard +
       clusterer of all images on CPU), every rank runs the labeler on a
       :class:`LabelingContext` holding the world group and the ranks
       compute the kNN and Jaccard rows of their blocks together; otherwise
       rank 0 alone runs it (distance -> clusterer, or the true ids when
       ``model.labels_from == 'gt'``). Rank 0 clusters and the labels and
       their origin are broadcast, nothing else; every rank then builds the
       :class:`PseudoLabelResult` with the same constructor
       (:meth:`PseudoLabeler.build_result`, centroids on CPU), so the
       results are identical;

       **without the banks** (``gather_banks='auto'``, the default): when
       the labelling is sharded and the model reads no bank row
       (``model.needs_bank_rows`` False, e.g. Cluster Contrast with
       ``ClusterMemory(init_mode='mean')``), and there is neither a
       reference dataloader nor a distance on raw features, the banks are
       never all-gathered. Each rank's extracted rows go point to point to
       the rank whose contiguous block ``knn_shard_bounds(N, D, W)`` holds
       them (:func:`redistribute_rows`), the ranks label from their blocks
       (``LabelingContext.row_block``), and the centroids of every bank,
       ``c_j = sum(f_i for i in C_j) / |C_j|``, are summed per rank and
       all-reduced (:meth:`PseudoLabeler.build_result_of_blocks`: the same
       bits as one process's). A rank then holds ``O(N D / W + N k)``; the
       result has no rows (``banks_gathered=False``). Every other case
       gathers the banks as above;
    3. ``model.set_pseudo_labels(result)`` resets the memories and
       ``sampler.set_labels(labels)`` the P x K sampler (the dataset is
       never mutated). If the sampler's length follows the labels
       (``PseudoIdentitySampler(samples_per_epoch='clusters')``) the epoch-
       based loop's ``max_iters`` is re-estimated as the iterations done so
       far plus the remaining epochs at the new ``len(train_dataloader)``
       (ETA, last-iteration checks; exact in the last epoch);
    4. the cluster counts, timings, the fraction of clusters that never
       cross a camera and, when the dataset has true ids, NMI/ARI, pair
       precision / recall and the cross-camera pair recall against them are
       logged (diagnostics only; ``cluster_stats``).

    The labeler's state (e.g. an eps computed once) is saved in the
    checkpoint and restored on resume. On resume in an epoch that is not
    re-labelled (``interval > 1``) the sampler gets the labels restored from
    the checkpoint.

    Args:
        labeler (dict): ``TASK_UTILS`` config of the labeler. Defaults to
            ``dict(type='PseudoLabeler')`` (Jaccard k1=30, k2=6 + DBSCAN
            eps=0.6, min_samples=4).
        interval (int): Re-label every ``interval`` epochs. Defaults to 1.
        dataloader (dict | DataLoader, optional): The cluster dataloader.
            Defaults to the config's top-level ``cluster_dataloader``.
        reference_dataloader (dict | DataLoader, optional): Dataloader of a
            reference set whose features go to the labeler's distance.
        log_diagnostics (bool): Log the agreement with the true ids (NMI,
            ARI, pair precision / recall, cross-camera recall) when the
            dataset has them. Defaults to True.
        gather_banks (str | bool): ``'auto'`` (label from row blocks
            without gathering the banks where step 2 allows it), True
            (always all-gather the ``(N, D)`` banks) or False (always label
            from row blocks; an error where it does not apply). Defaults to
            ``'auto'``.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 labeler: Union[dict, object] = dict(type='PseudoLabeler'),
                 interval: int = 1,
                 dataloader: Optional[Union[dict, DataLoader]] = None,
                 reference_dataloader: Optional[Union[dict,
                                                      DataLoader]] = None,
                 log_diagnostics: bool = True,
                 gather_banks: Union[str, bool] = 'auto'):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        if not (gather_banks is True or gather_banks is False
                or gather_banks == 'auto'):
            raise ValueError("gather_banks must be 'auto', True or False, "
                             f'got {gather_banks!r}')
        self.gather_banks = gather_banks
        self.labeler = build_module(labeler, TASK_UTILS)
        self.interval = interval
        self._dataloader = dataloader
        self._reference_dataloader = reference_dataloader
        self.log_diagnostics = log_diagnostics
        self.history = []

    # ------------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Check the model's contract and build the dataloaders."""
        model = get_ori_model(runner.model)
        for attr in ('pseudo_label_banks', 'set_pseudo_labels',
                     'labels_from'):
            if not hasattr(model, attr):
                raise TypeError(
                    f'PseudoLabelHook needs a BaseUSLReID model; '
                    f'{type(model).__name__} has no {attr!r}.')
        model.check_contract()
        if not isinstance(self._dataloader, DataLoader):
            cfg = self._dataloader
            if cfg is None:
                cfg = runner.cfg.get('cluster_dataloader')
            if cfg is None:
                raise ValueError(
                    'PseudoLabelHook needs a dataloader over the training '
                    'images with the test pipeline: set `cluster_dataloader` '
                    'in the config or pass `dataloader=` to the hook.')
            self._dataloader = runner.build_dataloader(cfg, seed=runner.seed)
        if isinstance(self._reference_dataloader, dict):
            self._reference_dataloader = runner.build_dataloader(
                self._reference_dataloader, seed=runner.seed)

    def before_train_epoch(self, runner) -> None:
        """Re-label if this epoch is due; restore labels on resume."""
        model = get_ori_model(runner.model)
        sampler = runner.train_dataloader.sampler
        due = (runner.epoch % self.interval == 0
               or model.pseudo_labels.numel() == 0)
        if due:
            result = self.label(runner)
            model.set_pseudo_labels(result)
            sampler.set_labels(result.labels.cpu())
        elif getattr(sampler, 'labels', None) is None:
            sampler.set_labels(model.pseudo_labels.cpu())
        self._update_max_iters(runner)

    @staticmethod
    def _update_max_iters(runner) -> None:
        """Re-estimate an epoch-based loop's ``max_iters`` from the current
        ``len(train_dataloader)`` (a sampler whose length follows the
        labels); a no-op when the length did not change."""
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop) or not hasattr(
                loop, '_max_iters'):
            return
        estimate = loop.iter + (loop.max_epochs - loop.epoch) * len(
            runner.train_dataloader)
        if estimate != loop.max_iters:
            loop._max_iters = estimate
            runner.message_hub.update_info('max_iters', estimate)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the labeler's state (if any)."""
        state = self.labeler.state_dict() if hasattr(self.labeler,
                                                     'state_dict') else {}
        if state:
            checkpoint[CKPT_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the labeler's state (if saved)."""
        if CKPT_KEY in checkpoint:
            self.labeler.load_state_dict(checkpoint[CKPT_KEY])

    # ------------------------------------------------------------------
    @torch.no_grad()
    def _extract(self, runner, dataloader: DataLoader,
                 encoder: str, normalize: bool = True) -> torch.Tensor:
        """All-gathered ``(N, D)`` features of ``dataloader`` in dataset
        order (identical on every rank); raw with ``normalize=False``."""
        num_samples = len(dataloader.dataset)
        # rank 0 shows the progress of its own shard
        feats, indices = extract_features(
            runner.model, dataloader, encoder=encoder, normalize=normalize)
        feats = all_gather_cat(feats)
        indices = all_gather_cat(indices)
        if indices.numel() != num_samples or not torch.equal(
                torch.sort(indices).values,
                torch.arange(num_samples, device=indices.device)):
            raise RuntimeError(
                f'A labelling dataloader returned {indices.numel()} samples '
                f'for a dataset of {num_samples}; its sampler must visit '
                'every image exactly once (DefaultSampler(shuffle=False, '
                'round_up=False)).')
        ordered = torch.empty_like(feats)
        ordered[indices] = feats
        return ordered

    def extract_banks(self, runner) -> Dict[str, torch.Tensor]:
        """The feature banks ``model.pseudo_label_banks`` of the train set."""
        model = get_ori_model(runner.model)
        return {
            name: self._extract(runner, self._dataloader, name)
            for name in model.pseudo_label_banks
        }

    def _needs_raw(self) -> bool:
        return bool(self.labeler.needs_raw_features)

    def label(self, runner) -> PseudoLabelResult:
        """Extract, label (:meth:`run_labeler`); returns the result."""
        model = get_ori_model(runner.model)
        dataset = self._dataloader.dataset
        train_set = runner.train_dataloader.dataset
        if len(dataset) != len(train_set):
            raise RuntimeError(
                f'cluster_dataloader has {len(dataset)} images but '
                f'train_dataloader has {len(train_set)}; both must be the '
                'same training split.')
        start = time.perf_counter()
        camids = torch.as_tensor(
            np.asarray(dataset.get_camids()), dtype=torch.long)
        true_ids = self._true_ids(dataset)
        if model.labels_from == 'gt' and true_ids is None:
            raise ValueError(
                "labels_from='gt' needs a training set with true ids "
                f'(get_pids()); {type(dataset).__name__} has none.')
        if self._labels_from_blocks(runner, model):
            return self._label_blocks(runner, model, camids, true_ids, start)
        raw = {}
        if self._needs_raw():
            # the clustered bank once, unnormalised; normalised from it
            # (row-wise, the same values as a normalised extraction)
            raw['raw_features'] = self._extract(
                runner, self._dataloader, model.cluster_encoder,
                normalize=False)
            banks = {model.cluster_encoder: F.normalize(
                raw['raw_features'], dim=1)}
            banks.update({
                name: self._extract(runner, self._dataloader, name)
                for name in model.pseudo_label_banks if name not in banks
            })
            banks = {s: banks[s] for s in model.pseudo_label_banks}
        else:
            banks = self.extract_banks(runner)
        reference = None
        if self._reference_dataloader is not None:
            reference = self._extract(runner, self._reference_dataloader,
                                      model.cluster_encoder,
                                      normalize=not raw)
            if raw:
                raw['raw_reference_features'] = reference
                reference = F.normalize(reference, dim=1)
        extract_s = time.perf_counter() - start
        clustered = model.cluster_encoder
        context = LabelingContext(
            features=banks[clustered],
            raw_features=raw.get('raw_features'),
            camids=camids,
            true_ids=true_ids,
            reference_features=reference,
            raw_reference_features=raw.get('raw_reference_features'),
            epoch=runner.epoch)
        labels, labels_from, output = self.run_labeler(
            context, model.labels_from)
        result = self.labeler.build_result(labels, labels_from, banks,
                                           clustered, camids, runner.epoch)
        # timing and distance diagnostics are rank 0's (logged there)
        self._log(runner, result, true_ids, extract_s,
                  output.timing if output else {},
                  output.stats if output else {})
        return result

    def _block_fallback(self, runner, model) -> Optional[str]:
        """Why this labelling all-gathers the banks (None: it labels from
        row blocks without them); the same answer on every rank."""
        world = dist.get_world_size()
        if self.gather_banks is True:
            return 'gather_banks=True'
        if world <= 1:
            return 'one process'
        if getattr(model, 'needs_bank_rows', True):
            return (f'{type(model).__name__} reads bank rows '
                    '(needs_bank_rows)')
        if self._reference_dataloader is not None:
            return 'a reference dataloader'
        if self._needs_raw():
            return 'the distance reads raw features'
        uses_sharded = getattr(self.labeler, 'uses_sharded', None)
        if uses_sharded is None or not hasattr(self.labeler,
                                               'build_result_of_blocks'):
            return 'the labeler has no sharded path'
        # the features will be on the model's device
        param = next(iter(model.parameters()), None)
        probe = LabelingContext(
            features=torch.empty(
                0, 0, device=None if param is None else param.device),
            process_group=torch_dist.group.WORLD,
            epoch=runner.epoch)
        if not uses_sharded(probe, model.labels_from):
            return 'the labelling is not sharded'
        return None

    def _labels_from_blocks(self, runner, model) -> bool:
        """Whether to label from row blocks (see ``gather_banks``)."""
        reason = self._block_fallback(runner, model)
        if reason is not None and self.gather_banks is False:
            raise ValueError(
                'PseudoLabelHook(gather_banks=False): the banks must be '
                f'gathered here ({reason}).')
        logged = getattr(self, '_gather_reasons_logged', set())
        if reason is not None and reason != 'one process' \
                and reason not in logged:
            self._gather_reasons_logged = logged | {reason}
            print_log(
                'PseudoLabelHook: the feature banks are all-gathered '
                f'({reason}).', logger='current')
        return reason is None

    @torch.no_grad()
    def _label_blocks(self, runner, model, camids: torch.Tensor,
                      true_ids: Optional[np.ndarray],
                      start: float) -> PseudoLabelResult:
        """Label from row blocks, never holding an ``(N, D)`` bank.

        Every rank extracts its shard of each bank of
        ``model.pseudo_label_banks``, moves the rows to the ranks whose
        blocks ``knn_shard_bounds(N, D, W)`` (of the clustered bank) hold
        them, labels with the sharded labeler from its block and builds
        the result from the blocks' all-reduced cluster sums.
        """
        dataset = self._dataloader.dataset
        num_samples = len(dataset)
        group = torch_dist.group.WORLD
        rank, world = dist.get_rank(), dist.get_world_size()
        blocks, bounds = {}, None
        for name in model.pseudo_label_banks:
            feats, indices = extract_features(
                runner.model, self._dataloader, encoder=name)
            if bounds is None:  # the clustered bank comes first
                bounds = knn_shard_bounds(num_samples, feats.shape[1], world)
            try:
                blocks[name] = redistribute_rows(feats, indices, bounds,
                                                 group)
            except ValueError as err:
                raise RuntimeError(
                    f'A labelling dataloader over {num_samples} images: '
                    f'{err} Its sampler must visit every image exactly '
                    'once (DefaultSampler(shuffle=False, '
                    'round_up=False)).') from err
            del feats, indices
        extract_s = time.perf_counter() - start
        clustered = model.cluster_encoder
        context = LabelingContext(
            features=blocks[clustered],
            camids=camids,
            true_ids=true_ids,
            epoch=runner.epoch,
            process_group=group,
            row_block=bounds[rank],
            num_samples=num_samples)
        if not self.labeler.uses_sharded(context, model.labels_from):
            # every rank holds the same context, so every rank raises here
            # (run_labeler would label on rank 0 alone, which a block cannot)
            raise RuntimeError(
                'PseudoLabelHook: the labeler does not shard the labelling '
                'of the extracted blocks ('
                f'{self.labeler.sharded_fallback(context, model.labels_from)}'
                '), though it did for the device check before the '
                "extraction; set the hook's gather_banks=True.")
        labels, labels_from, output = self.run_labeler(
            context, model.labels_from)
        result = self.labeler.build_result_of_blocks(
            labels, labels_from, blocks, bounds[rank], clustered, camids,
            runner.epoch, group)
        print_log(
            f'Pseudo-labels of epoch {runner.epoch}: the feature banks '
            f'stayed in {world} row blocks (no all-gather).',
            logger='current')
        self._log(runner, result, true_ids, extract_s,
                  output.timing if output else {},
                  output.stats if output else {})
        return result

    def run_labeler(self, context: LabelingContext, labels_from: str
                    ) -> Tuple[torch.Tensor, str, Optional[object]]:
        """Labels of ``context`` on every rank.

        Sharded (``labeler.uses_sharded``, several ranks): every rank labels
        with the world group in the context; its ``features`` are the
        all-gathered bank, of which each rank keeps its row block, or only
        that block (``context.row_block``, :meth:`_label_blocks`).
        Otherwise rank 0 labels alone and broadcasts the labels and their
        origin (``labels_from``).

        Returns:
            tuple: ``(labels, labels_from, output)``, the
            :class:`LabelingOutput` on rank 0 (every rank when sharded),
            None elsewhere.
        """
        if dist.get_world_size() > 1:
            shared = replace(context, process_group=torch_dist.group.WORLD)
            uses_sharded = getattr(self.labeler, 'uses_sharded', None)
            if uses_sharded is not None and uses_sharded(shared,
                                                         labels_from):
                output = self.labeler.label(shared, labels_from)
                print_log(
                    f'Pseudo-labels of epoch {context.epoch} computed by '
                    f'{dist.get_world_size()} ranks together (sharded).',
                    logger='current')
                return (torch.from_numpy(output.labels), output.labels_from,
                        output)
        output, payload = None, [None]
        if dist.is_main_process():
            output = self.labeler.label(context, labels_from)
            payload = [(torch.from_numpy(output.labels),
                        output.labels_from)]
        # the labels and their origin only: every rank builds the result
        dist.broadcast_object_list(payload, src=0)
        labels, labels_from = payload[0]
        return labels, labels_from, output

    def _true_ids(self, dataset) -> Optional[np.ndarray]:
        get_pids = getattr(dataset, 'get_pids', None)
        return None if get_pids is None else np.asarray(get_pids())

    def _log(self, runner, result: PseudoLabelResult,
             true_ids: Optional[np.ndarray], extract_s: float,
             timing: Dict[str, float],
             extra: Optional[Dict[str, float]] = None) -> None:
        """Log label statistics to the logger, message hub and visualizer
        (``extra``: the labeler's distance diagnostics, e.g. the spread of
        Theory's source term)."""
        n = result.num_samples
        stats: Dict[str, float] = dict(
            num_clusters=result.num_clusters,
            num_outliers=result.num_outliers,
            outlier_ratio=result.num_outliers / max(n, 1),
            extract_time=extract_s,
            cluster_time=timing.get('cluster_time', 0.0))
        if self.log_diagnostics and true_ids is not None \
                and result.num_clusters > 0 and result.labels_from != 'gt':
            # (for oracle labels they measure the injected noise)
            # outliers count as singletons in nmi/ari (cluster_stats)
            quality = cluster_stats(result.labels, true_ids, result.camids)
            stats.update({
                k: v
                for k, v in quality.items()
                if k not in ('num_clusters', 'num_outliers')
            })
            stats['num_true_ids'] = int(len(np.unique(true_ids)))
        elif result.num_clusters > 0 and result.labels_from != 'gt' \
                and result.camids is not None:
            # needs no true ids: clusters that never cross a camera
            stats.update(camera_stats(result.labels, result.camids))
        stats.update(extra or {})
        msg = ', '.join(f'{k}: {v:.4f}' if isinstance(v, float) else
                        f'{k}: {v}' for k, v in stats.items())
        what = {
            'gt': 'Ground-truth labels (labels_from=gt)',
            'oracle': 'ORACLE labels (true ids, '
            f'{self.labeler.describe_clusterer()}; not an unsupervised '
            'result)'
        }.get(result.labels_from, 'Pseudo-labels')
        print_log(f'{what} at epoch {runner.epoch}: {msg}', logger='current')
        # the counts also show on every training log line
        for key in ('num_clusters', 'num_outliers'):
            runner.message_hub.update_scalar(f'train/pseudo_label/{key}',
                                             stats[key])
        runner.visualizer.add_scalars(
            {f'pseudo_label/{k}': v
             for k, v in stats.items()}, step=runner.epoch)
        self.history.append(dict(epoch=runner.epoch, **stats))
