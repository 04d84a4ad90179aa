# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Checkpointing and run set-up in one place.

- :mod:`.fits`: does a checkpoint hold every weight of an encoder
  (:func:`check_checkpoint_fits`, :class:`CheckpointMismatchError`);
- :mod:`.load_from`: a new run from another stage's checkpoint
  (:func:`check_load_from`).
"""
from .fits import (CheckpointMismatchError, check_checkpoint_fits,
                   feature_prefixes)
from .load_from import check_load_from, skip_replaced_pretrained_inits

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint_fits', 'feature_prefixes',
    'check_load_from', 'skip_replaced_pretrained_inits'
]
