# Copyright (c) mmreid_usl contributors. All rights reserved.
"""L2-normalised (or raw) features of a dataloader through one encoder."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader

from mmreid_usl.utils.deprecation import renamed_kwargs
from mmreid_usl.utils.misc import get_ori_model


@torch.no_grad()
@renamed_kwargs(source='encoder')
def extract_features(
        model: nn.Module,
        dataloader: DataLoader,
        encoder: str = 'student',
        show_progress: bool = True,
        normalize: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features of this process's shard of a dataloader.

    For every batch the model's data preprocessor prepares the inputs and
    ``model.extract_feat(inputs, encoder)`` gives the raw features ``f``;
    the returned features are ``f / ||f||_2`` (float32), or ``f`` itself in
    float32 with ``normalize=False``. The model is
    put in eval mode for the extraction and its training mode restored
    afterwards. Nothing is gathered across processes: in a distributed run
    each rank gets its own shard, in the order its sampler visits it, and the
    caller all-gathers (see ``PseudoLabelHook.extract_features``).

    Args:
        model (nn.Module): A :class:`BaseUSLReID` (a DDP wrapper is
            unwrapped).
        dataloader (DataLoader): Yields ``dict(inputs, data_samples)``
            batches whose samples carry ``sample_idx``.
        encoder (str): ``'student'`` or ``'momentum'``. Defaults to
            ``'student'`` (``source`` is its deprecated name).
        show_progress (bool): Show an :class:`mmengine.utils.ProgressBar`
            over this shard (main process only). Defaults to True.
        normalize (bool): L2-normalise the features. Defaults to True.

    Returns:
        tuple[Tensor, Tensor]: ``(n, D)`` features and the ``(n, )``
        ``sample_idx`` (int64) of each row, both on the model's device.
    """
    model = get_ori_model(model)
    was_training = model.training
    model.eval()
    progress = None
    if show_progress and dist.is_main_process():
        sampler = getattr(dataloader, 'sampler', None)
        total = len(sampler) if sampler is not None else len(
            dataloader.dataset)
        progress = ProgressBar(total)
    feats, indices = [], []
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            feat = model.extract_feat(data['inputs'], encoder)
            # float32 (float64 models, the parity check, stay float64)
            feat = feat if feat.dtype == torch.float64 else feat.float()
            feats.append(F.normalize(feat, dim=1) if normalize else feat)
            indices.append(
                torch.tensor([s.sample_idx for s in data['data_samples']],
                             dtype=torch.long,
                             device=feat.device))
            if progress is not None:
                progress.update(len(feat))
    finally:
        if progress is not None:
            progress.file.write('\n')
        model.train(was_training)
    if not feats:
        raise RuntimeError('extract_features: the dataloader yielded no '
                           'batch on this process.')
    return torch.cat(feats), torch.cat(indices)
