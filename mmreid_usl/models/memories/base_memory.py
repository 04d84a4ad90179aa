# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The interface every memory (cluster proxies, instance banks) implements."""
from typing import Optional

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils.deprecation import renamed_attribute, renamed_kwargs
from ..utils.resizable_buffers import resize_buffers_for_loading


class BaseMemory(BaseModule):
    """A bank of vectors rebuilt at every (re-)labelling of the training set.

    The contract (``docs/adding_a_method.md``):

    - :meth:`reset` rebuilds the memory from the :class:`PseudoLabelResult`
      of the new epoch (called by ``BaseUSLReID.set_pseudo_labels`` for every
      memory of the model, identically on every rank); a memory whose reset
      reads only the cluster means declares :attr:`needs_bank_rows` False;
    - :meth:`update` takes this iteration's features, labels and raw camera
      ids (None where the samples carry none) after the loss was computed (a
      frozen memory keeps the default no-op); updates must all-gather the
      batch first, so every rank applies the same one;
    - :meth:`forward` optionally returns the ``(B, K)`` similarities of
      L2-normalised features against the memory.

    Every buffer is in the state dict and may change size with each
    re-clustering: loading a checkpoint resizes the buffers to the saved
    shapes first (``nn.Module`` refuses other shapes and MMEngine's
    non-strict loading would silently keep the stale buffer).

    Args:
        encoder (str, optional): The encoder whose feature bank of the
            result the memory is built from (``'student'``, ``'momentum'``);
            None uses the bank that was clustered. The model asks the
            ``PseudoLabelHook`` to extract every bank its memories name.
            ``feat_source`` is its deprecated name (every memory).
        init_cfg (dict, optional): Initialisation config.
    """

    feat_source = renamed_attribute('feat_source', 'encoder')

    #: Whether :meth:`reset` reads rows of a feature bank
    #: (``result.bank``), not only the labels, the camera ids and the
    #: cluster means (``result.centroids_of``). True unless a memory
    #: declares otherwise, so it gets the full banks; when no memory of a
    #: model needs rows, the ``PseudoLabelHook`` of a sharded labelling
    #: never gathers the ``(N, D)`` banks (``PseudoLabelResult`` without
    #: rows).
    needs_bank_rows: bool = True

    @renamed_kwargs(feat_source='encoder')
    def __init__(self,
                 encoder: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg)
        self.encoder = encoder

    @property
    def num_clusters(self) -> int:
        """int: Number of clusters the memory currently holds."""
        raise NotImplementedError

    def reset(self, result: PseudoLabelResult) -> None:
        """Rebuild the memory from a new labelling of the training set."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self,
               feats: Tensor,
               targets: Tensor,
               camids: Optional[Tensor] = None) -> None:
        """Update with this rank's batch (no-op: a frozen memory).

        Args:
            feats (Tensor): ``(B, D)`` L2-normalised features of this rank.
            targets (Tensor): ``(B,)`` cluster indices of this rank.
            camids (Tensor, optional): ``(B,)`` raw camera ids of this rank's
                batch (``BaseUSLReID.get_camids``), for camera-aware
                memories.
        """

    def forward(self, feats: Tensor) -> Tensor:
        """Similarities of ``(B, D)`` L2-normalised features to the memory."""
        raise NotImplementedError(
            f'{type(self).__name__} does not compute similarities.')

    def bank(self, result: PseudoLabelResult) -> Tensor:
        """The feature bank of ``result`` this memory is built from."""
        return result.bank(self.encoder)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args,
                              **kwargs) -> None:
        """Resize every persistent buffer to the checkpoint's shape, load."""
        resize_buffers_for_loading(
            self, state_dict, prefix,
            [n for n in self._buffers
             if n not in self._non_persistent_buffers_set])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
