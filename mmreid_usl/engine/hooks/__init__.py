# Copyright (c) mmreid_usl contributors. All rights reserved.
from ..checkpointing.hook import WorkDirCheckpointHook
from .momentum_update_hook import MomentumUpdateHook
from .optimizer_reset_hook import OptimizerResetHook
from .pseudo_label_hook import PseudoLabelHook
from .random_state_hook import RandomStateHook
from .rank_consistency_hook import RankConsistencyHook
from .sync_norm_buffers_hook import SyncNormBuffersHook
from .val_before_train_hook import ValBeforeTrainHook

__all__ = [
    'MomentumUpdateHook', 'PseudoLabelHook', 'SyncNormBuffersHook',
    'ValBeforeTrainHook', 'RandomStateHook', 'WorkDirCheckpointHook',
    'RankConsistencyHook', 'OptimizerResetHook'
]
