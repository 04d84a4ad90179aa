# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Run set-up: the one entry point of the tools and ``init_model``.

:func:`setup_runtime` is called first by ``tools/train.py``,
``tools/test.py``, ``tools/search.py``, the analysis tools and
:func:`mmreid_usl.apis.init_model`: it enables weights-only loading
(:mod:`.weights_only`) and hides a warning about an optional feature the
package never uses. Importing :mod:`mmreid_usl` registers nothing outside
its own registries and leaves the warning filters alone.

The rest is the argument and set-up code the tools share: the common flags
(:func:`add_cfg_options_arg`, :func:`add_launcher_args`), the default work
dir, reading a config and building its Runner.
"""
import argparse
import os
import os.path as osp
import warnings

from .weights_only import enable_weights_only_loading


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


def add_cfg_options_arg(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...`` (merged into the config)."""
    from mmengine.config import DictAction
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


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and ``--local-rank`` (see :func:`parse_tool_args`)."""
    parser.add_argument(
        '--launcher',
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


def load_config(config: str):
    """:func:`setup_runtime`, register the modules, read ``config``."""
    from mmengine.config import Config

    from mmreid_usl.utils.setup_env import register_all_modules
    setup_runtime()
    register_all_modules(init_default_scope=False)
    return Config.fromfile(config)


def build_runner(cfg):
    """The config's Runner (``runner_type``, else MMEngine's), with CPU
    processes set up for a launcher-started run without CUDA."""
    from mmengine.runner import Runner

    from mmreid_usl.registry import RUNNERS
    from mmreid_usl.utils.setup_env import setup_cpu_distributed
    setup_cpu_distributed(cfg)
    return RUNNERS.build(cfg) if 'runner_type' in cfg else \
        Runner.from_cfg(cfg)
