# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Data preprocessor that batches single- or multi-view ReID inputs."""
import torch
from mmpretrain.models.utils import SelfSupDataPreprocessor

from mmreid_usl.registry import MODELS


@MODELS.register_module()
class ReIDDataPreprocessor(SelfSupDataPreprocessor):
    """Normalise and batch ReID images, single- or multi-view.

    Built on mmpretrain's :class:`SelfSupDataPreprocessor` (BGR->RGB,
    ``(x - mean) / std``; use ``collate_fn=dict(type='default_collate')``).
    Single-view inputs come out as a ``(B, C, H, W)`` tensor; multi-view
    inputs (a list of V views per sample, from ``MultiView``) come out as one
    ``(V, B, C, H, W)`` tensor, so algorithms index views as ``inputs[v]``.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise, convert colour order and stack views.

        Args:
            data (dict): A collated batch with ``inputs`` and
                ``data_samples``.
            training (bool): Whether in training mode (unused).

        Returns:
            dict: ``inputs`` (Tensor) and ``data_samples``.
        """
        out = super().forward(data, training)
        if isinstance(out['inputs'], (list, tuple)):
            out['inputs'] = torch.stack(list(out['inputs']), dim=0)
        return out
