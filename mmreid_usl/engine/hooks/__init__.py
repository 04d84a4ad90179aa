# Copyright (c) mmreid_usl contributors. All rights reserved.
from .momentum_update_hook import MomentumUpdateHook
from .pseudo_label_hook import PseudoLabelHook
from .sync_norm_buffers_hook import SyncNormBuffersHook
from .val_before_train_hook import ValBeforeTrainHook

__all__ = [
    'MomentumUpdateHook', 'PseudoLabelHook', 'SyncNormBuffersHook',
    'ValBeforeTrainHook'
]
