# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Small helpers."""
import torch.nn as nn
from mmengine.model import is_model_wrapper

from .deprecation import DeprecatedFlagAction

#: The encoders a model may name (``BaseMomentumUSLReID`` has both).
ENCODERS = ('student', 'momentum')


def get_ori_model(model: nn.Module) -> nn.Module:
    """Return the model inside a DDP/FSDP wrapper, or the model itself."""
    return model.module if is_model_wrapper(model) else model


def set_test_encoder(cfg, encoder: str) -> None:
    """Set ``cfg.model.test_cfg.encoder`` (what ``--encoder`` does).

    The deprecated key ``test_cfg.feat_source`` of an older config is
    dropped: the value set here overrides it (both keys together would be an
    error).
    """
    test_cfg = cfg.model.setdefault('test_cfg', {})
    test_cfg.pop('feat_source', None)
    test_cfg['encoder'] = encoder


def add_encoder_arg(parser, help: str) -> None:
    """The ``--encoder student|momentum`` flag of a tool (``args.encoder``,
    None when not given); ``--feat-source`` is its deprecated spelling
    (accepted, with a ``DeprecatedNameWarning``)."""
    parser.add_argument(
        '--encoder',
        '--feat-source',
        action=DeprecatedFlagAction,
        deprecated=['--feat-source'],
        choices=ENCODERS,
        help=help + ' (--feat-source is its deprecated spelling)')
