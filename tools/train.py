# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Train an unsupervised ReID model: ``python tools/train.py CONFIG``.

Resume (see docs/robustness.md): ``--resume`` continues from the newest
readable ``epoch_N.pth`` of ``--work-dir`` (never from another folder) and
exits with an error when there is none; ``--resume PATH`` continues from a
given checkpoint. A resume at an epoch boundary is bit-exact. A learning rate
given in the config / ``--cfg-options`` replaces the one stored in the
checkpoint (e.g. to restart after a NaN loss with a lower one).

``load_from`` (a new run from another stage's checkpoint) must hold every
weight of the student encoder, as in ``tools/test.py``; ``--partial-load``
allows a deliberate partial load.

One run per work dir: a run holds a lock on its work dir (released when the
process ends, however it ends), so a second run into it is refused naming
the first; a new run (without ``--resume``) into a work dir that holds the
checkpoints of an earlier run is refused unless ``--overwrite`` is given.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmreid_usl.engine.checkpointing.load_from import (check_load_from,
                                         skip_replaced_pretrained_inits)
from mmreid_usl.engine.work_dir_lock import (WorkDirBusyError, launcher_rank,
                                             lock_work_dir)
from mmreid_usl.engine.work_dir_reuse import (WorkDirNotEmptyError,
                                              check_new_run)
from mmreid_usl.registry import RUNNERS
from mmreid_usl.utils import (register_all_modules, setup_cpu_distributed,
                              setup_runtime)
from mmreid_usl.utils.cfg_options import (ConfigOptionError,
                                          check_cfg_options,
                                          unconsumed_top_level_keys)
from mmreid_usl.engine.checkpointing.fits import CheckpointMismatchError
from mmreid_usl.utils.global_batch import check_batch_size_overrides
from mmreid_usl.utils.nan_advice import set_restart_command
from mmreid_usl.utils.resume import (ResumeError, check_run_not_finished,
                                     find_resume_checkpoint,
                                     resolve_resume_path)
from mmreid_usl.utils.safe_url_loader import WeightsUnavailableError

#: Checkpoint hooks upgraded to the work-dir-confined subclass.
PLAIN_CHECKPOINT_HOOKS = ('CheckpointHook', 'mmengine.CheckpointHook')


def parse_args() -> argparse.Namespace:
    """Command-line flags, the same as mmpretrain's ``tools/train.py``."""
    parser = argparse.ArgumentParser(description='Train a ReID model')
    parser.add_argument('config', help='train config file path')
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
        help='let load_from (a new run, not --resume) load a checkpoint whose '
        'encoder weights do not all fit the config (default: an error naming '
        'the missing / unexpected keys)')
    parser.add_argument(
        '--amp',
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
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = find_resume_checkpoint(
            checkpoint_dir(cfg), fallback=args.resume_fallback)
        print_log(
            'Auto-resume: the newest checkpoint of this work dir is '
            f'{cfg.load_from}.',
            logger='current')
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = resolve_resume_path(
            args.resume, fallback=args.resume_fallback)
    if args.resume is not None:
        check_run_not_finished(cfg.load_from, cfg.get('train_cfg'))
    return cfg


#: Flags repeated by the restart command of the NaN advice.
RESTART_FLAGS = ('amp', 'no_validate', 'auto_scale_lr', 'no_pin_memory',
                 'no_persistent_workers')


def cfg_option_tokens(argv: List[str]) -> List[str]:
    """The ``--cfg-options`` tokens of a command line, as typed."""
    tokens, inside = [], False
    for arg in argv:
        if arg.startswith('--cfg-options='):
            tokens.append(arg.split('=', 1)[1])
            inside = False
        elif arg == '--cfg-options':
            inside = True
        elif arg.startswith('--'):
            inside = False
        elif inside:
            tokens.append(arg)
    return tokens


def record_restart_command(cfg: Config, args: argparse.Namespace,
                           config_lr: Optional[float]) -> None:
    """Let the NaN advice repeat this command line (see
    :func:`mmreid_usl.utils.nan_advice.set_restart_command`)."""
    flags = [
        '--' + name.replace('_', '-') for name in RESTART_FLAGS
        if getattr(args, name, False)
    ]
    set_restart_command(
        args.config,
        cfg.work_dir,
        flags=flags,
        cfg_options=cfg_option_tokens(sys.argv[1:]),
        config_lr=config_lr)


def config_file_lr(cfg: Config) -> Optional[float]:
    """``optim_wrapper.optimizer.lr`` of a config, if it is a number."""
    try:
        lr = cfg.optim_wrapper.optimizer.lr
    except (AttributeError, KeyError, TypeError):
        return None
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        return None
    return float(lr)


def claim_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """Hold the work dir for this run and keep earlier runs' files apart.

    On the main process (rank 0 of the launcher): locks the work dir (see
    :mod:`mmreid_usl.engine.work_dir_lock`) and, for a run that does not
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
        check_new_run([cfg.work_dir, checkpoint_dir(cfg)],
                      overwrite=args.overwrite)


def checkpoint_dir(cfg: Config) -> str:
    """Where the checkpoint hook writes (work_dir or out_dir/<name>)."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    out_dir = hook.get('out_dir')
    if out_dir is None:
        return cfg.work_dir
    return osp.join(out_dir, osp.basename(osp.abspath(cfg.work_dir)))


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
    setup_runtime()
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(args.config)
    unused = unconsumed_top_level_keys(cfg)
    if unused:
        print_log(
            f'{args.config}: the top-level keys {unused} are read by nothing '
            '(helper variables of the config file): overriding them has no '
            'effect; override the keys that use them.',
            logger='current',
            level=logging.WARNING)
    config_lr = config_file_lr(cfg)
    try:
        cfg = merge_args(cfg, args)
        claim_work_dir(cfg, args)
    except (ConfigOptionError, ResumeError, WorkDirBusyError,
            WorkDirNotEmptyError) as err:
        sys.exit(f'tools/train.py: error: {err}')
    record_restart_command(cfg, args, config_lr)
    setup_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        runner = RUNNERS.build(cfg)
    else:
        runner = Runner.from_cfg(cfg)
    if cfg.get('load_from') and not cfg.get('resume', False):
        # a stage hand-off: the encoder must fit, as in tools/test.py
        try:
            if check_load_from(runner.model, cfg.load_from,
                               args.partial_load):
                skip_replaced_pretrained_inits(runner.model, cfg.load_from)
        except (CheckpointMismatchError, FileNotFoundError) as err:
            sys.exit(f'tools/train.py: error: {err}')
    try:
        runner.train()
    except (ResumeError, WorkDirBusyError, WeightsUnavailableError) as err:
        # resume=True set in the config itself; a Runner-level lock;
        # ImageNet weights offline
        sys.exit(f'tools/train.py: error: {err}')


if __name__ == '__main__':
    main()
