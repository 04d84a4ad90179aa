# Copyright (c) mmreid_usl contributors. All rights reserved.
from .momentum_update_hook import MomentumUpdateHook
from .pseudo_label_hook import PseudoLabelHook
from .val_before_train_hook import ValBeforeTrainHook

__all__ = ['MomentumUpdateHook', 'PseudoLabelHook', 'ValBeforeTrainHook']
