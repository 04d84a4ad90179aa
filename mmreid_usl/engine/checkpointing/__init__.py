# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Checkpointing and run set-up in one package.

==========================  ===============================================
module                      what it holds
==========================  ===============================================
:mod:`.run_setup`           the entry point :func:`setup_runtime` of the
                            tools and ``init_model``; shared tool set-up
:mod:`.weights_only`        weights-only loading (allow-list, URL loaders)
:mod:`.fits`                does a checkpoint fit the feature encoders
:mod:`.load_from`           a new run from another stage's checkpoint
:mod:`.resume`              resume resolution (:func:`resolve_resume`)
:mod:`.atomic`              atomic saves, stale ``*.partial`` clean-up
:mod:`.bookkeeping`         paths relative to this run's folder
:mod:`.config_lr`           on resume, the config's learning rate wins
:mod:`.hook`                :class:`WorkDirCheckpointHook`
:mod:`.work_dir_lock`       one training per work dir (``flock``)
:mod:`.work_dir_reuse`      no new run into an earlier run's work dir
:mod:`.restart`             the restart command after a non-finite loss
:mod:`.mmengine_private`    the MMEngine private attributes used, in one place
==========================  ===============================================
"""
from .atomic import PARTIAL_SUFFIX, remove_stale_partials
from .bookkeeping import checkpoint_dir
from .config_lr import apply_config_lr
from .fits import (CheckpointMismatchError, check_checkpoint_fits,
                   feature_prefixes, load_checked_checkpoint)
from .hook import WorkDirCheckpointHook
from .load_from import check_load_from, skip_replaced_pretrained_inits
from .restart import restart_advice, suggested_lr
from .resume import ResumeError, resolve_resume
from .run_setup import setup_runtime
from .weights_only import (WeightsUnavailableError,
                           enable_weights_only_loading, load_url_weights_only,
                           load_weights_only)
from .work_dir_lock import WorkDirBusyError, lock_work_dir, release_work_dir
from .work_dir_reuse import WorkDirNotEmptyError, check_new_run

__all__ = [
    'PARTIAL_SUFFIX', 'remove_stale_partials', 'checkpoint_dir',
    'apply_config_lr', 'CheckpointMismatchError', 'check_checkpoint_fits',
    'feature_prefixes', 'load_checked_checkpoint', 'WorkDirCheckpointHook',
    'check_load_from', 'skip_replaced_pretrained_inits', 'restart_advice',
    'suggested_lr', 'ResumeError', 'resolve_resume', 'setup_runtime',
    'WeightsUnavailableError', 'enable_weights_only_loading',
    'load_url_weights_only', 'load_weights_only', 'WorkDirBusyError',
    'lock_work_dir', 'release_work_dir', 'WorkDirNotEmptyError',
    'check_new_run'
]
