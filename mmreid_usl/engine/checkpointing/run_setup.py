# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Run set-up: the one entry point of the tools and ``init_model``.

:func:`setup_runtime` is called first by ``tools/train.py``,
``tools/test.py``, ``tools/search.py``, the analysis tools and
:func:`mmreid_usl.apis.init_model`: it enables weights-only loading
(:mod:`.weights_only`) and hides a warning about an optional feature the
package never uses. Importing :mod:`mmreid_usl` registers nothing outside
its own registries and leaves the warning filters alone.

The rest is the argument and set-up code the tools share, in one place:

- flags: ``CONFIG [CHECKPOINT]`` (:func:`tool_parser`), ``--device``
  (:func:`add_device_arg`), ``--cfg-options`` (:func:`add_cfg_options_arg`),
  ``--encoder`` (:func:`add_encoder_arg`), those of a
  :class:`~mmreid_usl.apis.ReIDInferencer` (:func:`add_images_arg`,
  :func:`add_inferencer_args`),
  ``--launcher`` / ``--local-rank`` (:func:`add_launcher_args`);
- set-up: the work dir (:func:`resolve_work_dir`), reading a config with its
  overrides (:func:`load_config`, :func:`apply_cfg_options`,
  :func:`load_tool_config`), the Runner (:func:`build_runner`) or the
  inferencer (:func:`build_inferencer`) of the flags.
"""
import argparse
import os
import os.path as osp
import warnings
from typing import Optional

from mmreid_usl.utils.misc import add_encoder_arg, set_test_encoder
from .weights_only import enable_weights_only_loading

#: ``--help`` of ``--cfg-options`` (:func:`add_cfg_options_arg`).
CFG_OPTIONS_HELP = (
    'override some settings in the used config, the key-value pair in '
    'xxx=yyy format will be merged into config file. If the value to be '
    'overwritten is a list, it should be like key="[a,b]" or key=a,b It also '
    'allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" Note that the '
    'quotation marks are necessary and that no white space is allowed.')

__all__ = [
    'silence_known_warnings', 'setup_runtime', 'tool_parser', 'add_device_arg',
    'add_cfg_options_arg', 'add_encoder_arg', 'add_images_arg',
    'add_inferencer_args', 'add_launcher_args', 'parse_tool_args',
    'default_work_dir', 'resolve_work_dir', 'load_config', 'apply_cfg_options',
    'load_tool_config', 'build_runner', 'build_inferencer'
]


def silence_known_warnings() -> None:
    """Hide warnings about optional features this package never uses.

    ``mmcv-lite`` (the declared requirement) has no compiled ops; importing
    mmpretrain then warns that ``MultiScaleDeformableAttention`` cannot be
    imported. Called by :func:`setup_runtime` — not on import, so that
    importing :mod:`mmreid_usl` leaves the warning filters of the caller
    alone.
    """
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def setup_runtime() -> None:
    """One call for command-line tools and inference entry points.

    Enables weights-only loading of local and URL checkpoints
    (:func:`~.weights_only.enable_weights_only_loading`) and silences the
    warnings of :func:`silence_known_warnings`.
    """
    silence_known_warnings()
    enable_weights_only_loading()


def tool_parser(description: str,
                config_help: str = 'config file path',
                checkpoint: bool = True) -> argparse.ArgumentParser:
    """The parser of a tool, with its positional ``config`` and (unless
    ``checkpoint`` is False) ``checkpoint``.

    Args:
        description (str): The tool's ``--help`` description.
        config_help (str): Help of ``config``.
        checkpoint (bool): Whether the tool takes a checkpoint.

    Returns:
        argparse.ArgumentParser: The parser, for the tool's other flags.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    if checkpoint:
        parser.add_argument('checkpoint', help='checkpoint file')
    return parser


def add_device_arg(parser: argparse.ArgumentParser) -> None:
    """``--device`` of the model (default: ``cuda`` when available)."""
    import torch
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device of the model')


def add_cfg_options_arg(parser: argparse.ArgumentParser,
                        help: str = CFG_OPTIONS_HELP) -> None:
    """``--cfg-options key=value ...`` (merged into the config)."""
    from mmengine.config import DictAction
    parser.add_argument('--cfg-options',
                        nargs='+',
                        action=DictAction,
                        help=help)


def add_images_arg(parser: argparse.ArgumentParser, flag: str,
                   help: str) -> None:
    """A required flag that takes image files and / or folders."""
    parser.add_argument(flag, nargs='+', required=True, help=help)


def add_inferencer_args(parser: argparse.ArgumentParser,
                        features_are: str) -> None:
    """``--name-pattern``, ``--batch-size``, ``--num-workers``,
    ``--device``, ``--encoder`` and ``--cfg-options``: the flags
    :func:`build_inferencer` reads.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        features_are (str): What the tool does with the features, for the
            help of ``--encoder``: "encoder whose features are
            {features_are} (default: ...)".
    """
    parser.add_argument(
        '--name-pattern',
        help='regex with two groups (pid, camera) to parse ids from file '
        'names (default: the config\'s test dataset pattern or Market\'s)')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=0)
    add_device_arg(parser)
    add_encoder_arg(
        parser, f'encoder whose features are {features_are} (default: the '
        "config's model.test_cfg.encoder)")
    add_cfg_options_arg(parser)


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and ``--local-rank`` (see :func:`parse_tool_args`)."""
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_tool_args(parser: argparse.ArgumentParser,
                    argv=None) -> argparse.Namespace:
    """Parse; a ``--local-rank`` flag sets ``LOCAL_RANK`` when unset."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ and hasattr(args, 'local_rank'):
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def default_work_dir(config: str) -> str:
    """``./work_dirs/<config name>``, as in mmpretrain."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config))[0])


def resolve_work_dir(args: argparse.Namespace, cfg) -> str:
    """The work dir of a run: ``--work-dir``, else the config's
    ``work_dir``, else :func:`default_work_dir`."""
    if args.work_dir is not None:
        return args.work_dir
    if cfg.get('work_dir', None) is not None:
        return cfg.work_dir
    return default_work_dir(args.config)


def load_config(config: str):
    """:func:`setup_runtime`, register the modules, read ``config``."""
    from mmengine.config import Config

    from mmreid_usl.utils.setup_env import register_all_modules
    setup_runtime()
    register_all_modules(init_default_scope=False)
    return Config.fromfile(config)


def apply_cfg_options(cfg, cfg_options: Optional[dict]) -> None:
    """Check ``--cfg-options`` against ``cfg`` and merge them into it.

    Raises:
        ConfigOptionError: An option that would be ignored or fail later
            (:func:`~mmreid_usl.utils.cfg_options.check_cfg_options`).
    """
    from mmreid_usl.utils.cfg_options import check_cfg_options
    if cfg_options is not None:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)


def load_tool_config(config: str,
                     cfg_options: Optional[dict] = None,
                     encoder: Optional[str] = None):
    """The config of a tool that builds a model from a checkpoint:
    :func:`load_config`, :func:`apply_cfg_options`, then ``--encoder``
    (:func:`~mmreid_usl.utils.misc.set_test_encoder`) when given.

    Raises:
        ConfigOptionError: A bad ``--cfg-options`` entry.
    """
    cfg = load_config(config)
    apply_cfg_options(cfg, cfg_options)
    if encoder is not None:
        set_test_encoder(cfg, encoder)
    return cfg


def build_runner(cfg):
    """The config's Runner (``runner_type``, else MMEngine's), with CPU
    processes set up for a launcher-started run without CUDA."""
    from mmengine.runner import Runner

    from mmreid_usl.registry import RUNNERS
    from mmreid_usl.utils.setup_env import setup_cpu_distributed
    setup_cpu_distributed(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)


def build_inferencer(args: argparse.Namespace, **kwargs):
    """:func:`setup_runtime` and the
    :class:`~mmreid_usl.apis.ReIDInferencer` of the flags of
    :func:`tool_parser` and :func:`add_inferencer_args`; ``kwargs`` go to
    it too."""
    from mmreid_usl.apis import ReIDInferencer
    setup_runtime()
    return ReIDInferencer(args.config,
                          pretrained=args.checkpoint,
                          device=args.device,
                          encoder=args.encoder,
                          batch_size=args.batch_size,
                          num_workers=args.num_workers,
                          name_pattern=args.name_pattern,
                          cfg_options=args.cfg_options,
                          **kwargs)
