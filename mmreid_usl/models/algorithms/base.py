# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Base class of the (unsupervised) ReID algorithms: the method contract."""
from abc import abstractmethod
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from mmreid_usl.utils.build import build_module, check_dict_keys
from mmreid_usl.utils.deprecation import (renamed_attribute, renamed_keys,
                                          renamed_kwargs)
from mmreid_usl.utils.validation import (check_choice,
                                         check_optional_positive_int)
from ..memories.base_memory import BaseMemory
from ..utils.batch_shuffle import RUNNING_STATS, grouped_forward
from ..utils.resizable_buffers import resize_buffers_for_loading
from .base_utils import NonFiniteLossError, num_bn_groups  # noqa: F401

#: Where the training labels come from (``labels_from``).
LABELS_FROM = ('pseudo', 'gt')
#: Deprecated keys of ``test_cfg`` and their names.
TEST_CFG_RENAMES = {'feat_source': 'encoder'}


class BaseUSLReID(BaseModel):
    """An encoder trained from labels that may change every epoch.

    The method contract (``docs/adding_a_method.md``). An algorithm declares

    - its encoders (:attr:`encoder_names`, :meth:`get_encoder`):
      ``'student'`` here, ``'momentum'`` too in :class:`BaseMomentumUSLReID`;
    - which encoder's features are clustered (``cluster_encoder``) and
      which feature banks :meth:`set_pseudo_labels` reads
      (:attr:`pseudo_label_banks`: the clustered bank plus the ``encoder``
      of every :class:`BaseMemory` it owns); the ``PseudoLabelHook``
      extracts exactly those and checks that they exist;
    - where its labels come from (``labels_from``): ``'pseudo'`` (the
      clustering) or ``'gt'`` (the dataset's true ids, through the same
      pipeline: a supervised model, or the supervised upper bound of any
      unsupervised config with one switch);

    and receives a typed :class:`PseudoLabelResult` at every (re-)labelling.
    The labels are kept in the ``pseudo_labels`` buffer indexed by the
    dataset's ``sample_idx`` (the dataset is never mutated), every memory is
    reset from the result, and :meth:`loss` looks the targets up with
    :meth:`get_targets`.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder` config.
        labels_from (str): ``'pseudo'`` or ``'gt'``. Defaults to
            ``'pseudo'``.
        cluster_encoder (str): Encoder whose features are clustered.
            Defaults to ``'student'``.
        bn_group_size (int, optional): Images per BatchNorm group of the
            student's training forward (:meth:`student_forward`): the batch
            of a process is forwarded in consecutive chunks of this size, as
            DataParallel splits a batch over GPUs, so one process reproduces
            the BN statistics of a multi-GPU run. None: the whole batch.
        bn_running_stats (str): Which BN groups move the running statistics
            of every grouped forward (student and momentum):
            ``'every_group'`` (default) or ``'first_group'``, the official
            multi-GPU DataParallel runs, whose replicas on the other GPUs
            update copies that are discarded (``docs/parity.md``).
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``ReIDDataPreprocessor`` with ImageNet mean/std and BGR->RGB.
        test_cfg (dict, optional): What :meth:`predict` returns:
            ``encoder``, the encoder it uses (defaults to ``'student'``),
            and ``normalize`` (bool), whether the features are
            L2-normalised (defaults to True; False for the raw features in
            float32, ranked by ``ReIDMetric`` with the squared Euclidean
            distance, as Theory's evaluation).
        init_cfg (dict, optional): Initialisation config.

    Deprecated names (a ``DeprecatedNameWarning``, same values and
    behaviour): ``label_source`` (``labels_from``), ``cluster_feat_source``
    (``cluster_encoder``), ``test_cfg.feat_source`` (``test_cfg.encoder``).
    """

    #: Keys ``test_cfg`` may hold (unknown ones are errors).
    TEST_CFG_KEYS: Tuple[str, ...] = ('encoder', 'normalize')

    label_source = renamed_attribute('label_source', 'labels_from')
    cluster_feat_source = renamed_attribute('cluster_feat_source',
                                            'cluster_encoder')

    @renamed_kwargs(label_source='labels_from',
                    cluster_feat_source='cluster_encoder')
    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 labels_from: str = 'pseudo',
                 cluster_encoder: str = 'student',
                 bn_group_size: Optional[int] = None,
                 bn_running_stats: str = 'every_group',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='ReIDDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True)
        data_preprocessor = build_module(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        check_choice('labels_from', labels_from, LABELS_FROM)
        self.encoder = build_module(encoder)
        check_optional_positive_int('bn_group_size', bn_group_size)
        check_choice('bn_running_stats', bn_running_stats, RUNNING_STATS)
        self.labels_from = labels_from
        self.bn_group_size = bn_group_size
        self.bn_running_stats = bn_running_stats
        self.cluster_encoder = cluster_encoder
        test_cfg = renamed_keys(f'{type(self).__name__}.test_cfg', test_cfg,
                                TEST_CFG_RENAMES, dict(encoder='student'))
        check_dict_keys(type(self).__name__, 'test_cfg', test_cfg,
                        self.TEST_CFG_KEYS)
        self.test_cfg = dict(encoder='student')
        self.test_cfg.update(test_cfg or {})
        self.register_buffer('pseudo_labels', torch.zeros(0,
                                                          dtype=torch.long))

    def _build_memory(self,
                      cfg: Optional[Union[dict, nn.Module]],
                      name: str = 'memory') -> Optional[nn.Module]:
        """Build a memory config, its ``feat_dim`` derived from the encoder.

        Args:
            cfg (dict | nn.Module, optional): The memory (config).
            name (str): The argument it was given as (for errors).

        Raises:
            ValueError: ``cfg`` has keys the memory does not take.
        """
        if isinstance(cfg, dict):
            cfg = dict(cfg)
            cfg.setdefault('feat_dim', self.encoder.feat_dim)
        return self._build_component(name, cfg)

    def _build_component(self, name: str,
                         cfg: Optional[Union[dict, nn.Module]]
                         ) -> Optional[nn.Module]:
        """Build a loss / memory config, rejecting keys its class does not
        take (:func:`~mmreid_usl.utils.build.build_module`); modules and
        None are returned as is."""
        return build_module(cfg, owner=type(self).__name__, name=name)

    # ------------------------------------------------------------------
    # the contract
    @property
    def encoder_names(self) -> Tuple[str, ...]:
        """tuple[str]: Names of the encoders :meth:`get_encoder` knows."""
        return ('student', )

    feat_sources = renamed_attribute('feat_sources', 'encoder_names')

    @property
    def memories(self) -> List[BaseMemory]:
        """list[BaseMemory]: The memories reset at every re-labelling.

        Only the outermost ones: a memory made of memories (DCMIP's
        discrepant proxies) resets its parts itself.
        """
        found: List[BaseMemory] = []

        def visit(module: nn.Module) -> None:
            for child in module.children():
                if isinstance(child, BaseMemory):
                    found.append(child)
                else:
                    visit(child)

        visit(self)
        return found

    @property
    def pseudo_label_banks(self) -> Tuple[str, ...]:
        """tuple[str]: Feature banks :meth:`set_pseudo_labels` reads.

        The clustered bank first, then the ``encoder`` of every memory (in
        module order, without repetition).
        """
        banks = [self.cluster_encoder]
        for memory in self.memories:
            if memory.encoder is not None and memory.encoder not in banks:
                banks.append(memory.encoder)
        return tuple(banks)

    @property
    def needs_bank_rows(self) -> bool:
        """bool: Whether :meth:`set_pseudo_labels` reads rows of the
        feature banks: whether any memory does
        (:attr:`BaseMemory.needs_bank_rows`).

        False lets the ``PseudoLabelHook`` of a sharded multi-rank labelling
        skip the all-gather of the ``(N, D)`` banks: the result then holds
        the labels, the camera ids and the centroids of every bank of
        :attr:`pseudo_label_banks`, nothing per row. An algorithm whose
        :meth:`set_pseudo_labels` reads rows outside its memories overrides
        this.
        """
        return any(memory.needs_bank_rows for memory in self.memories)

    def check_contract(self) -> None:
        """Raise if the declared encoders are not encoders of this model."""
        for name in (self.test_cfg['encoder'], ) + self.pseudo_label_banks:
            if name not in self.encoder_names:
                raise ValueError(
                    f'{type(self).__name__} has the encoders '
                    f'{self.encoder_names}, but {name!r} is used as an '
                    'encoder (test_cfg.encoder, cluster_encoder or a '
                    "memory's encoder).")

    # ------------------------------------------------------------------
    # features
    @renamed_kwargs(source='encoder')
    def get_encoder(self, encoder: str = 'student') -> nn.Module:
        """Return the encoder named ``encoder`` (``'student'`` here)."""
        if encoder != 'student':
            raise ValueError(f'{type(self).__name__} has no {encoder!r} '
                             "encoder; the encoder must be 'student'.")
        return self.encoder

    @renamed_kwargs(source='encoder')
    def extract_feat(self,
                     inputs: torch.Tensor,
                     encoder: str = 'student') -> torch.Tensor:
        """Raw post-BN features ``(B, D)`` of the encoder ``encoder``."""
        return self.get_encoder(encoder)(inputs)

    def student_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Training forward of the student in BN groups (``bn_group_size``).

        Returns:
            Tensor: ``(B, D)`` raw post-BN features, in input order.
        """
        return grouped_forward(self.encoder, inputs,
                               num_bn_groups(len(inputs), self.bn_group_size),
                               self.bn_running_stats)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[ReIDDataSample]] = None,
                mode: str = 'tensor'):
        """Dispatch to :meth:`loss`, :meth:`predict` or :meth:`extract_feat`.

        Args:
            inputs (Tensor): ``(B, C, H, W)`` or multi-view ``(V, B, C, H,
                W)`` images from the data preprocessor.
            data_samples (list[ReIDDataSample], optional): Their samples.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        raise RuntimeError(f'Invalid mode "{mode}".')

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[ReIDDataSample]] = None
                ) -> List[ReIDDataSample]:
        """Attach the test features of the encoder ``test_cfg.encoder``.

        L2-normalised (the project's evaluation) unless
        ``test_cfg.normalize`` is False: then the raw features in float32,
        so that ``ReIDMetric`` ranks by the squared Euclidean distance of
        the unnormalised features (Theory's evaluation,
        ``reid/evaluators.py``: ``||q||² + ||g||² - 2q·g``).

        Returns:
            list[ReIDDataSample]: The samples with ``pred_feature`` set.
        """
        feats = self.extract_feat(inputs, self.test_cfg['encoder'])
        if self.test_cfg.get('normalize', True):
            feats = F.normalize(feats, dim=1)
        else:
            feats = feats.float()
        if data_samples is None:
            data_samples = [ReIDDataSample() for _ in range(len(feats))]
        for sample, feat in zip(data_samples, feats):
            sample.set_pred_feature(feat)
        return data_samples

    # ------------------------------------------------------------------
    # labels
    def set_pseudo_labels(self, result: PseudoLabelResult) -> None:
        """Take a new labelling of the training set.

        Stores the labels and resets every memory from ``result``;
        subclasses that keep other label-dependent state extend it.

        Args:
            result (PseudoLabelResult): Identical on every rank.

        Raises:
            KeyError: If ``result`` misses a bank the model declared in
                :attr:`pseudo_label_banks` or clustered another bank.
        """
        self.store_labels(result)
        for memory in self.memories:
            memory.reset(result)

    def store_labels(self, result: PseudoLabelResult) -> None:
        """Check ``result`` against the contract and keep its labels.

        The part of :meth:`set_pseudo_labels` every algorithm needs; one
        that resets its memories in its own way (DCMIP) calls it directly.

        Raises:
            KeyError: If ``result`` misses a bank the model declared in
                :attr:`pseudo_label_banks` or clustered another bank.
        """
        missing = [b for b in self.pseudo_label_banks
                   if not result.has_bank(b)]
        if missing or result.cluster_encoder != self.cluster_encoder:
            raise KeyError(
                f'{type(self).__name__} clusters the '
                f'{self.cluster_encoder!r} bank and reads '
                f'{self.pseudo_label_banks}, but the result clustered '
                f'{result.cluster_encoder!r} and has no '
                f'{missing or [self.cluster_encoder]} feature bank.')
        self.pseudo_labels = result.labels.to(
            device=self.pseudo_labels.device, dtype=torch.long)

    def get_targets(self, data_samples: List[ReIDDataSample]) -> torch.Tensor:
        """Training labels of a batch.

        The labels set by :meth:`set_pseudo_labels`, looked up by
        ``sample_idx``. A ``labels_from='gt'`` model without a labelling
        hook reads the true (train-split, contiguous) ids of the samples.

        Raises:
            RuntimeError: If no labels are set or an outlier was fed.
        """
        device = self.pseudo_labels.device
        if self.pseudo_labels.numel() == 0:
            if self.labels_from == 'gt':
                return torch.cat([s.gt_label for s in data_samples]).to(device)
            raise RuntimeError(
                'No pseudo-labels: the PseudoLabelHook must run before '
                'training (is `default_hooks.pseudo_label` configured?).')
        idx = torch.tensor([s.sample_idx for s in data_samples],
                           device=device)
        targets = self.pseudo_labels[idx]
        if bool((targets < 0).any()):
            raise RuntimeError('A clustering outlier (label -1) reached the '
                               'loss; the sampler must skip outliers.')
        return targets

    def get_camids(
            self,
            data_samples: List[ReIDDataSample]) -> Optional[torch.Tensor]:
        """Raw camera ids of a batch, on the labels' device.

        What a memory's ``update`` receives next to the targets; None when a
        sample carries no ``camid``.
        """
        if not all('camid' in s for s in data_samples):
            return None
        return torch.tensor([s.camid for s in data_samples],
                            device=self.pseudo_labels.device)

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """Sum the losses and stop on NaN/inf before the optimiser step.

        ``MMDistributedDataParallel.train_step`` also calls the module's
        ``parse_losses``, so the check guards single- and multi-process runs.

        Raises:
            NonFiniteLossError: If any loss term is not finite; it carries
                the terms and their values (``tools/train.py`` turns it into
                the command that restarts the run).
        """
        loss, log_vars = super().parse_losses(losses)
        if not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(log_vars)
        return loss, log_vars

    @abstractmethod
    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Losses of one batch, keyed ``loss_<name>``."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        resize_buffers_for_loading(self, state_dict, prefix, ['pseudo_labels'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
