# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT``.

The checkpoint must hold every weight of the encoder that produces the test
features (``model.test_cfg.encoder``, or ``--encoder``); otherwise the tool
exits with an error naming the missing / unexpected keys instead of scoring
a partly random encoder. Memories, pseudo-labels and the encoder that is
not tested are listed as ignored.

Like mmpretrain's, the tool works in the run's work dir (``--work-dir``, by
default ``work_dirs/<config name>`` as for ``tools/train.py``), but it writes
only into its ``test/`` subfolder: each call adds
``WORK_DIR/test/<timestamp>/`` (log, ``vis_data``) and dumps its config to
``WORK_DIR/test/<config>.py``. The
training run's own files — its timestamped log folders, its config dump,
checkpoints and lock — are left alone, and a test can run while that
training still holds its work dir.
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmengine import dist
from mmengine.config import Config

from mmreid_usl.engine.checkpointing import (CheckpointMismatchError,
                                             check_checkpoint_fits)
from mmreid_usl.engine.checkpointing.run_setup import (
    add_cfg_options_arg, add_encoder_arg, add_launcher_args, apply_cfg_options,
    build_runner, load_config, parse_tool_args, resolve_work_dir,
    set_test_encoder, tool_parser)
from mmreid_usl.utils import get_ori_model
from mmreid_usl.utils.cfg_options import ConfigOptionError


def parse_args() -> argparse.Namespace:
    """Command-line flags, the same as mmpretrain's ``tools/test.py``."""
    parser = tool_parser('Test (evaluate) a model', 'test config file path')
    parser.add_argument(
        '--work-dir',
        help='the work dir of the run (default: work_dirs/<config name>, as '
        'for tools/train.py); the test writes its log folder and config '
        'under WORK_DIR/test/, never next to the training run\'s files')
    parser.add_argument(
        '--out',
        help='write the metrics (e.g. reid/mAP, in percent) to this JSON '
        'file')
    add_encoder_arg(
        parser, 'encoder to evaluate (default: the config\'s '
        'model.test_cfg.encoder; ICE configs use the momentum encoder)')
    parser.add_argument(
        '--rerank',
        action='store_true',
        help='evaluate with k-reciprocal re-ranking (Zhong et al. CVPR '
        '2017; k1=20, k2=6, lambda=0.3): sets rerank=True on the test '
        'evaluator(s), so the metrics (and --out) are the re-ranked ones')
    add_cfg_options_arg(parser)
    add_launcher_args(parser)
    return parse_tool_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command-line flags into the config."""
    cfg.launcher = args.launcher
    # The Runner adds a <timestamp>/ log folder and replaces <config>.py in
    # its work dir on every call: keep both out of the training run's files.
    cfg.work_dir = osp.join(resolve_work_dir(args, cfg), 'test')
    cfg.load_from = args.checkpoint
    if args.encoder is not None:
        set_test_encoder(cfg, args.encoder)
    if args.rerank:
        evaluators = cfg.test_evaluator
        for evaluator in (evaluators
                          if isinstance(evaluators, list) else [evaluators]):
            evaluator['rerank'] = True
    # Testing needs neither re-clustering nor a training dataloader.
    cfg.default_hooks.pop('pseudo_label', None)
    # Nor checkpoint saving: None (not pop, which would bring back MMEngine's
    # default CheckpointHook) also drops WorkDirCheckpointHook's work-dir
    # lock, meant for one training per work dir, not for concurrent tests.
    cfg.default_hooks['checkpoint'] = None
    apply_cfg_options(cfg, args.cfg_options)
    return cfg


def test_encoders(cfg: Config, model) -> list:
    """Encoders the test loop will use (checked in the checkpoint)."""
    names = [get_ori_model(model).test_cfg.get('encoder', 'student')]
    loop = cfg.get('test_cfg') or {}
    if loop.get('type') == 'MomentumValLoop':  # sources: deprecated name
        names += list(
            loop.get('encoders', loop.get('sources', ('student', 'momentum'))))
    return list(dict.fromkeys(names))


def main() -> None:
    """Build the Runner and evaluate on the test split."""
    args = parse_args()
    try:
        cfg = merge_args(load_config(args.config), args)
    except ConfigOptionError as err:
        sys.exit(f'tools/test.py: error: {err}')
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        sys.exit(f'tools/test.py: error: no such checkpoint file: '
                 f'{args.checkpoint}')
    runner = build_runner(cfg)
    try:
        check_checkpoint_fits(runner.model, args.checkpoint,
                              test_encoders(cfg, runner.model))
    except CheckpointMismatchError as err:
        sys.exit(f'tools/test.py: error: {err}')
    metrics = runner.test()
    if args.out and dist.is_main_process():
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    main()
