# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Snapshot of every shipped config's merged values, key by key.

``tests/test_configs_snapshot.py`` loads every config under ``configs/``
(``_base_`` excluded) with ``Config.fromfile`` and compares its merged dict
with ``tests/data/config_snapshot.json``, so a reorganisation of the bases
provably changes no value. Usage::

    # add the configs that are not in the snapshot yet (never rewrites one)
    python tools/misc/config_snapshot.py
    # rewrite the entries of configs whose values change on purpose
    python tools/misc/config_snapshot.py --update configs/ice/ice_r50_market.py
    # print the differences, exit 1 if any
    python tools/misc/config_snapshot.py --check
    # regenerate the whole file
    python tools/misc/config_snapshot.py --all

The snapshot stores each config as flat ``dotted.key[index]`` -> value pairs;
tuples and lists are the same value, and the repository path is written
``{repo}``.
"""
import argparse
import glob
import json
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SNAPSHOT = osp.join(REPO, 'tests', 'data', 'config_snapshot.json')
REGENERATE = 'python tools/misc/config_snapshot.py'


def leaf_configs(repo: str = REPO) -> List[str]:
    """Every config under ``configs/`` but the ``_base_`` files (relative)."""
    paths = glob.glob(osp.join(repo, 'configs', '**', '*.py'), recursive=True)
    rel = (osp.relpath(p, repo).replace(osp.sep, '/') for p in paths)
    return sorted(p for p in rel if '/_base_/' not in p)


def _stable(value: Any, repo: str) -> Any:
    """JSON-stable leaf value: tuples as lists, the repo path as ``{repo}``."""
    if isinstance(value, str):
        return value.replace(repo, '{repo}')
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)  # a type or function in a config: compare its repr


def flatten(value: Any, repo: str = REPO, prefix: str = '') -> Dict[str, Any]:
    """``{'a.b[0].c': leaf}``; empty dicts and lists are leaves."""
    out: Dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key in sorted(value, key=str):
            name = f'{prefix}.{key}' if prefix else str(key)
            out.update(flatten(value[key], repo, name))
    elif isinstance(value, (list, tuple)) and value:
        for i, item in enumerate(value):
            out.update(flatten(item, repo, f'{prefix}[{i}]'))
    elif isinstance(value, dict):
        out[prefix] = {}
    elif isinstance(value, (list, tuple)):
        out[prefix] = []
    else:
        out[prefix] = _stable(value, repo)
    return out


def merged(path: str, repo: str = REPO) -> Dict[str, Any]:
    """The flat merged values of one config (path relative to ``repo``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo, path))
    return flatten(cfg.to_dict(), repo)


def load(snapshot: str = SNAPSHOT) -> Dict[str, Dict[str, Any]]:
    if not osp.exists(snapshot):
        return {}
    with open(snapshot, encoding='utf-8') as f:
        return json.load(f)


def save(data: Dict[str, Dict[str, Any]], snapshot: str = SNAPSHOT) -> None:
    with open(snapshot, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write('\n')


def differences(expected: Dict[str, Any], actual: Dict[str, Any],
                limit: int = 30) -> List[str]:
    """One line per key that is missing, new or different."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            lines.append(f'  - {key}: {expected[key]!r} (missing now)')
        elif key not in expected:
            lines.append(f'  + {key}: {actual[key]!r} (not in snapshot)')
        elif expected[key] != actual[key]:
            lines.append(f'  ~ {key}: {expected[key]!r} -> {actual[key]!r}')
    if len(lines) > limit:
        lines = lines[:limit] + [f'  ... {len(lines) - limit} more keys']
    return lines


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--update', nargs='+', metavar='CONFIG',
        help='rewrite the entries of these configs (paths from the repo root)')
    group.add_argument(
        '--all', action='store_true', help='regenerate every entry')
    group.add_argument(
        '--check', action='store_true',
        help='print the differences and exit 1 if there are any')
    parser.add_argument('--snapshot', default=SNAPSHOT)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from mmreid_usl.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    data = {} if args.all else load(args.snapshot)
    leaves = leaf_configs()
    if args.check:
        failed = 0
        for path in sorted(set(leaves) | set(data)):
            if path not in data:
                print(f'{path}: not in the snapshot')
            elif path not in leaves:
                print(f'{path}: in the snapshot but the file is gone')
            else:
                diff = differences(data[path], merged(path))
                if not diff:
                    continue
                print(f'{path}:', *diff, sep='\n')
            failed += 1
        print(f'{failed} of {len(leaves)} configs differ')
        return int(failed > 0)
    if args.update:
        # paths from the working directory or from the repository root
        todo = [
            osp.relpath(
                osp.abspath(p if osp.exists(p) else osp.join(REPO, p)),
                REPO).replace(osp.sep, '/') for p in args.update
        ]
    else:
        todo = [p for p in leaves if p not in data]
    for path in todo:
        data[path] = merged(path)
        print(f'wrote {path}')
    save(data, args.snapshot)
    return 0


if __name__ == '__main__':
    sys.exit(main())
