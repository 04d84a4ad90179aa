# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Build a trained model and extract L2-normalised ReID features."""
import logging
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from mmreid_usl.engine.checkpointing import (load_checked_checkpoint,
                                             setup_runtime)
from mmreid_usl.engine.feature_extraction import extract_features
from mmreid_usl.registry import MODELS
from mmreid_usl.utils import register_all_modules

ConfigType = Union[str, Path, Config]


def init_model(config: ConfigType,
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a ReID model from a config and load its weights.

    The model is built from ``config.model`` with the ``MODELS`` registry
    under the config's ``default_scope`` (``'mmreid_usl'``). Its
    ``init_weights`` is not called, so no ImageNet weights are downloaded:
    with a checkpoint every weight comes from it, without one the model keeps
    PyTorch's default initialisation (a warning is logged). The checkpoint is
    read with MMEngine's loader (``torch.load(weights_only=True)``, with the
    allow-list of :func:`mmreid_usl.engine.checkpointing.setup_runtime`) once
    and checked strictly for the encoder that produces the features
    (``model.get_encoder(test_cfg['encoder'])``, see
    :func:`mmreid_usl.engine.checkpointing.fits.check_checkpoint_fits`): a
    checkpoint of another algorithm or architecture is an error naming the
    missing / unexpected keys. The other parts (memories, pseudo-labels, the
    encoder that is not used) are loaded non-strictly, so a published model
    without the cluster memories loads too.

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): Checkpoint path or URL. Defaults to None.
        device (str | torch.device): Device of the model. Defaults to
            ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config, as
            ``--cfg-options`` does. Defaults to None.

    Returns:
        nn.Module: The model in eval mode on ``device``, with the config in
        ``model.cfg`` (and ``model.dataset_meta`` when the checkpoint has
        one).

    Raises:
        CheckpointMismatchError: The checkpoint lacks weights of the feature
            encoder, or has unexpected / wrongly shaped ones.
    """
    setup_runtime()
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    elif not isinstance(config, Config):
        raise TypeError('config must be a filename or a Config, got '
                        f'{type(config).__name__}')
    if cfg_options is not None:
        config.merge_from_dict(cfg_options)
    register_all_modules(init_default_scope=False)
    init_default_scope(config.get('default_scope', 'mmreid_usl'))

    model = MODELS.build(config.model)
    if checkpoint is None:
        print_log(
            'init_model: no checkpoint given, the model keeps a random '
            'initialisation.',
            logger='current',
            level=logging.WARNING)
    else:
        ckpt = load_checked_checkpoint(
            model, checkpoint, [model.test_cfg.get('encoder', 'student')])
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        if 'dataset_meta' in meta:
            model.dataset_meta = meta['dataset_meta']
    model.cfg = config
    model.to(device)
    model.eval()
    return model


__all__ = ['init_model', 'extract_features']
