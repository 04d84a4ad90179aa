# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Print the fully merged config: ``python tools/misc/print_config.py CFG``."""
import argparse
from typing import Optional, Sequence

from mmengine.config import Config, DictAction
from mmengine.logging import print_log


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line flags, as mmpretrain's ``tools/misc/print_config.py``."""
    parser = argparse.ArgumentParser(description='Print the whole config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or '
        'key=a,b It also allows nested list/tuple values, e.g. '
        'key="[(a,b),(c,d)]" Note that the quotation marks are necessary '
        'and that no white space is allowed.')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Load the config (with its ``_base_`` files), merge, print."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    print_log(f'Config:\n{cfg.pretty_text}')


if __name__ == '__main__':
    main()
