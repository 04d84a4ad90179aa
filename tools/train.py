# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Train an unsupervised ReID model: ``python tools/train.py CONFIG``.

Resume (see docs/robustness.md): ``--resume`` continues from the newest
readable ``epoch_N.pth`` of ``--work-dir`` (never from another folder) and
exits with an error when there is none; ``--resume PATH`` continues from a
given checkpoint. A resume at an epoch boundary is bit-exact. A learning rate
given in the config / ``--cfg-options`` replaces the one stored in the
checkpoint (e.g. to restart after a NaN loss with a lower one).

A two-stage config (GDS / Theory) starts from its stage-1 checkpoint,
``--cfg-options stage1_checkpoint=CKPT``: the encoder's ``init_cfg``
(``Pretrained``, ``prefix='encoder.'``); ``load_from`` (a new run from a
whole checkpoint, OpenMMLab's fine-tune setting; also accepted for the
stage-1 checkpoint) likewise. Either must hold every weight of the student
encoder, as in ``tools/test.py``; ``--partial-load`` allows a deliberate
partial load.

One run per work dir: a run holds a lock on its work dir (released when the
process ends, however it ends), so a second run into it is refused naming
the first; a new run (without ``--resume``) into a work dir that holds the
checkpoints of an earlier run is refused unless ``--overwrite`` is given.
"""
import argparse
import logging
import sys
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from mmreid_usl.engine.checkpointing import (
    CheckpointMismatchError, ResumeError, WeightsUnavailableError,
    WorkDirBusyError, WorkDirNotEmptyError, check_new_run, checkpoint_dir,
    lock_work_dir, resolve_resume, restart_advice)
from mmreid_usl.engine.checkpointing.restart import (cfg_option_tokens,
                                                     config_lr)
from mmreid_usl.engine.checkpointing.stage1 import (Stage1CheckpointError,
                                                    apply_stage1_checkpoint,
                                                    check_start_checkpoint)
from mmreid_usl.engine.checkpointing.run_setup import (
    add_cfg_options_arg, add_launcher_args, build_runner, load_config,
    parse_tool_args, resolve_work_dir, tool_parser)
from mmreid_usl.engine.checkpointing.work_dir_lock import launcher_rank
from mmreid_usl.models import NonFiniteLossError
from mmreid_usl.utils.cfg_options import (ConfigOptionError, check_cfg_options,
                                          unconsumed_top_level_keys)
from mmreid_usl.utils.global_batch import check_batch_size_overrides

#: Checkpoint hooks upgraded to the work-dir-confined subclass.
PLAIN_CHECKPOINT_HOOKS = ('CheckpointHook', 'mmengine.CheckpointHook')


def parse_args() -> argparse.Namespace:
    """Command-line flags, the same as mmpretrain's ``tools/train.py``."""
    parser = tool_parser('Train a ReID model',
                         'train config file path',
                         checkpoint=False)
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or, without a path, from the '
        'newest readable epoch_N.pth of the work dir (an error if there is '
        'none)')
    parser.add_argument(
        '--resume-fallback',
        action='store_true',
        help='when the checkpoint to resume from cannot be read, resume from '
        'the previous readable one (default: stop and name it)')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='start a new run in a work dir that holds the checkpoints of an '
        'earlier run, deleting those checkpoints (without it, such a run is '
        'refused: use --resume to continue the earlier run or another '
        '--work-dir)')
    parser.add_argument(
        '--partial-load',
        action='store_true',
        help='let stage1_checkpoint or load_from (a new run, not --resume) '
        'load a checkpoint whose encoder weights do not all fit the config '
        '(default: an error naming the missing / unexpected keys)')
    parser.add_argument('--amp',
                        action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='whether to disable the pin_memory option in dataloaders.')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='whether to disable the persistent_workers option in '
        'dataloaders.')
    add_cfg_options_arg(parser)
    add_launcher_args(parser)
    return parse_tool_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line flags into the config.

    Raises:
        ConfigOptionError: A ``--cfg-options`` key is unknown, a helper
            variable, or its value has the wrong type.
        ResumeError: ``--resume`` has nothing (readable) to resume from.
    """
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher

    # work_dir: CLI > config > ./work_dirs/<config stem>
    cfg.work_dir = resolve_work_dir(args, cfg)

    if args.amp:
        optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        assert optim_wrapper in ['OptimWrapper', 'AmpOptimWrapper'], \
            '`--amp` is not supported custom optimizer wrapper type ' \
            f'`{optim_wrapper}.'
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.cfg_options is not None:
        check_cfg_options(cfg, args.cfg_options)
        check_batch_size_overrides(cfg, args.cfg_options)

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    def set_default_dataloader_cfg(cfg, field):
        if cfg.get(field, None) is None:
            return
        dataloader_cfg = cfg[field]
        if args.no_pin_memory:
            dataloader_cfg['pin_memory'] = False
        if args.no_persistent_workers:
            dataloader_cfg['persistent_workers'] = False

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                  'cluster_dataloader'):
        set_default_dataloader_cfg(cfg, field)

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    ensure_robust_hooks(cfg)
    # resolved here, after --work-dir and --cfg-options, so that a bad
    # resume stops before anything is built
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = resolve_resume(args.resume,
                                       run_checkpoint_dir(cfg),
                                       fallback=args.resume_fallback,
                                       train_cfg=cfg.get('train_cfg'))
    return cfg


#: Flags repeated by the restart command of the NaN advice.
RESTART_FLAGS = ('amp', 'no_validate', 'auto_scale_lr', 'no_pin_memory',
                 'no_persistent_workers')


def nan_restart_advice(err: NonFiniteLossError, cfg: Config,
                       args: argparse.Namespace, runner,
                       file_lr: Optional[float]) -> str:
    """The command that restarts this run after a non-finite loss: its
    config, work dir, flags and ``--cfg-options``, its own last checkpoint
    and a lower learning rate (:func:`restart_advice`)."""
    flags = [
        '--' + name.replace('_', '-') for name in RESTART_FLAGS
        if getattr(args, name, False)
    ]
    return restart_advice(
        err.terms,
        config=args.config,
        work_dir=getattr(runner, 'work_dir', None) or cfg.work_dir,
        flags=flags,
        cfg_options=cfg_option_tokens(sys.argv[1:]),
        run_lr=config_lr(cfg),
        config_lr=file_lr,
        last_checkpoint=runner.message_hub.get_info('last_ckpt'))


def claim_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """Hold the work dir for this run and keep earlier runs' files apart.

    On the main process (rank 0 of the launcher): locks the work dir (see
    :mod:`mmreid_usl.engine.checkpointing.work_dir_lock`) and, for a run
    that does not
    resume, refuses a work dir holding another run's checkpoints, or with
    ``--overwrite`` deletes them (:func:`check_new_run`).

    Raises:
        WorkDirBusyError: Another training runs in the work dir.
        WorkDirNotEmptyError: A new run into an earlier run's work dir.
    """
    if launcher_rank(args.launcher) != 0:
        return
    lock_work_dir(cfg.work_dir)
    if not cfg.get('resume', False):
        check_new_run([cfg.work_dir, run_checkpoint_dir(cfg)],
                      overwrite=args.overwrite)


def run_checkpoint_dir(cfg: Config) -> str:
    """Where the checkpoint hook writes (work_dir or out_dir/<name>)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    return checkpoint_dir(cfg.work_dir, hook.get('out_dir'))


def ensure_robust_hooks(cfg: Config) -> None:
    """Use the checkpoint and random-state hooks exact resume needs.

    A plain ``CheckpointHook`` becomes ``WorkDirCheckpointHook`` (same
    arguments: it only confines the bookkeeping to the work dir), and a
    ``RandomStateHook`` is added when the config has none (a default hook
    named ``random_state`` set to None keeps it off).
    """
    hooks = cfg.get('default_hooks')
    if hooks is None:
        cfg.default_hooks = hooks = dict()
    ckpt = hooks.get('checkpoint')
    if ckpt is not None and ckpt.get('type') in PLAIN_CHECKPOINT_HOOKS:
        ckpt['type'] = 'WorkDirCheckpointHook'
    if 'random_state' not in hooks:
        hooks['random_state'] = dict(type='RandomStateHook')
    elif hooks['random_state'] is None:  # switched off explicitly
        hooks.pop('random_state')


def main() -> None:
    """Build the Runner from the config and train."""
    args = parse_args()
    cfg = load_config(args.config)
    unused = unconsumed_top_level_keys(cfg)
    if unused:
        print_log(
            f'{args.config}: the top-level keys {unused} are read by nothing '
            '(helper variables of the config file): overriding them has no '
            'effect; override the keys that use them.',
            logger='current',
            level=logging.WARNING)
    file_lr = config_lr(cfg)
    try:
        cfg = merge_args(cfg, args)
        # the stage-1 hand-off: the encoder's init_cfg (Pretrained)
        apply_stage1_checkpoint(cfg, args.config)
        claim_work_dir(cfg, args)
    except (ConfigOptionError, ResumeError, Stage1CheckpointError,
            WorkDirBusyError, WorkDirNotEmptyError) as err:
        sys.exit(f'tools/train.py: error: {err}')
    runner = build_runner(cfg)
    # a new run from stage1_checkpoint / load_from: the encoder must fit,
    # as in tools/test.py
    try:
        check_start_checkpoint(runner.model, cfg, args.partial_load)
    except (CheckpointMismatchError, FileNotFoundError) as err:
        sys.exit(f'tools/train.py: error: {err}')
    try:
        runner.train()
    except NonFiniteLossError as err:
        sys.exit('tools/train.py: error: ' +
                 nan_restart_advice(err, cfg, args, runner, file_lr))
    except (ResumeError, WorkDirBusyError, WeightsUnavailableError) as err:
        # resume=True set in the config itself; a Runner-level lock;
        # ImageNet weights offline
        sys.exit(f'tools/train.py: error: {err}')


if __name__ == '__main__':
    main()
