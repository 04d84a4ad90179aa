# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Dict-typed arguments of the algorithms: unknown keys are errors.

The checks live in :mod:`mmreid_usl.utils.build` with the package's one
module-building helper, :func:`~mmreid_usl.utils.build.build_module`; the
names here are kept for their callers.
"""
from typing import Optional, Union

import torch.nn as nn

from mmreid_usl.registry import MODELS
from mmreid_usl.utils.build import (accepted_init_keys, build_module,
                                    check_dict_keys)


def build_checked(owner: str, name: str,
                  cfg: Optional[Union[dict, nn.Module]]
                  ) -> Optional[nn.Module]:
    """``build_module(cfg, MODELS, owner, name)``: build after checking
    ``cfg``'s keys (modules and None are returned as is)."""
    return build_module(cfg, MODELS, owner=owner, name=name)


__all__ = ['accepted_init_keys', 'build_checked', 'check_dict_keys']
