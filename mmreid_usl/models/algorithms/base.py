# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Base class of the unsupervised ReID algorithms."""
from abc import abstractmethod
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import ReIDDataSample
from ..utils.resizable_buffers import resize_buffers_for_loading


class BaseUSLReID(BaseModel):
    """An encoder trained from pseudo-labels that change every epoch.

    The pseudo-label flow (``../shared/docs/architecture.md`` §3.3): the
    ``PseudoLabelHook`` clusters the training set and calls
    :meth:`set_pseudo_labels`; the algorithm keeps the labels in the
    ``pseudo_labels`` buffer (indexed by the dataset's ``sample_idx``, so the
    dataset itself is never mutated) and rebuilds whatever depends on them
    (memories, proxies). Subclasses implement :meth:`loss`.

    Args:
        encoder (dict | nn.Module): The :class:`ReIDEncoder` config.
        data_preprocessor (dict | nn.Module, optional): Defaults to
            ``ReIDDataPreprocessor`` with ImageNet mean/std and BGR->RGB.
        test_cfg (dict, optional): ``feat_source`` (``'student'`` or, for
            algorithms with a momentum encoder, ``'momentum'``): the encoder
            :meth:`predict` uses.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 encoder: Union[dict, nn.Module],
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='ReIDDataPreprocessor',
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                to_rgb=True)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder) if isinstance(encoder,
                                                           dict) else encoder
        self.test_cfg = dict(feat_source='student')
        self.test_cfg.update(test_cfg or {})
        self.register_buffer('pseudo_labels', torch.zeros(0,
                                                          dtype=torch.long))

    # ------------------------------------------------------------------
    # features
    def get_encoder(self, source: str = 'student') -> nn.Module:
        """Return the encoder named ``source`` (``'student'`` here)."""
        if source != 'student':
            raise ValueError(f'{type(self).__name__} has no {source!r} '
                             "encoder; feat_source must be 'student'.")
        return self.encoder

    def extract_feat(self,
                     inputs: torch.Tensor,
                     source: str = 'student') -> torch.Tensor:
        """Raw post-BN features ``(B, D)`` of the encoder ``source``."""
        return self.get_encoder(source)(inputs)

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
        """Attach L2-normalised features (``test_cfg.feat_source``).

        Returns:
            list[ReIDDataSample]: The samples with ``pred_feature`` set.
        """
        feats = F.normalize(
            self.extract_feat(inputs, self.test_cfg['feat_source']), dim=1)
        if data_samples is None:
            data_samples = [ReIDDataSample() for _ in range(len(feats))]
        for sample, feat in zip(data_samples, feats):
            sample.set_pred_feature(feat)
        return data_samples

    # ------------------------------------------------------------------
    # pseudo-labels
    def set_pseudo_labels(self, result) -> None:
        """Take a new clustering of the training set.

        Args:
            result (PseudoLabelResult): ``labels`` ``(N, )`` (-1 =
                outlier), ``num_clusters``, ``centroids`` ``(C, D)`` and
                ``extras`` (``features``, ``camids``), identical on every
                rank.
        """
        self.pseudo_labels = result.labels.to(
            device=self.pseudo_labels.device, dtype=torch.long)

    def get_targets(self, data_samples: List[ReIDDataSample]) -> torch.Tensor:
        """Pseudo-labels of a batch, looked up by ``sample_idx``.

        Raises:
            RuntimeError: If no pseudo-labels are set or an outlier was fed.
        """
        if self.pseudo_labels.numel() == 0:
            raise RuntimeError(
                'No pseudo-labels: the PseudoLabelHook must run before '
                'training (is `default_hooks.pseudo_label` configured?).')
        idx = torch.tensor([s.sample_idx for s in data_samples],
                           device=self.pseudo_labels.device)
        targets = self.pseudo_labels[idx]
        if bool((targets < 0).any()):
            raise RuntimeError('A clustering outlier (label -1) reached the '
                               'loss; the sampler must skip outliers.')
        return targets

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """Sum the losses and stop on NaN/inf before the optimiser step.

        ``MMDistributedDataParallel.train_step`` also calls the module's
        ``parse_losses``, so the check guards single- and multi-process runs.

        Raises:
            FloatingPointError: If any loss term is not finite; the message
                names the terms and their values.
        """
        loss, log_vars = super().parse_losses(losses)
        if not bool(torch.isfinite(loss)):
            terms = ', '.join(f'{k}={float(v):.4g}'
                              for k, v in log_vars.items())
            raise FloatingPointError(
                f'Non-finite loss ({terms}); stopping before the optimiser '
                'step so no weight is corrupted. Lower the learning rate, '
                'disable --amp, or check the inputs.')
        return loss, log_vars

    @abstractmethod
    def loss(self, inputs: torch.Tensor,
             data_samples: List[ReIDDataSample]) -> Dict[str, torch.Tensor]:
        """Losses of one batch."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              strict, missing_keys, unexpected_keys,
                              error_msgs):
        resize_buffers_for_loading(self, state_dict, prefix, ['pseudo_labels'])
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      strict, missing_keys, unexpected_keys,
                                      error_msgs)
