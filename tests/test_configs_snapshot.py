# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Every config path resolves to the merged values of the snapshot.

``tests/data/config_snapshot.json`` holds, for every config under
``configs/`` (``_base_`` excluded), its merged dict as loaded by
``Config.fromfile``, flattened to ``dotted.key[index]`` -> value (tuples and
lists are the same value). Reorganising the bases must change no value; a
config whose values change on purpose, or a new config, is (re)written with
``tools/misc/config_snapshot.py``::

    python tools/misc/config_snapshot.py                  # add new configs
    python tools/misc/config_snapshot.py --update CONFIG  # rewrite one entry
    python tools/misc/config_snapshot.py --check          # print differences
    python tools/misc/config_snapshot.py --all            # regenerate all
"""
import importlib.util
import os.path as osp

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location(
        'config_snapshot', osp.join(REPO, 'tools/misc/config_snapshot.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SNAP = _tool()
EXPECTED = SNAP.load()
LEAVES = SNAP.leaf_configs()


@pytest.mark.parametrize('path', LEAVES)
def test_config_resolves_to_snapshot(path):
    if path not in EXPECTED:
        pytest.fail(f'{path} is not in tests/data/config_snapshot.json; '
                    f'add it with `{SNAP.REGENERATE}` (writes only the '
                    'configs that are missing) and commit the file')
    diff = SNAP.differences(EXPECTED[path], SNAP.merged(path))
    assert not diff, (
        f'{path} resolves to other merged values than the snapshot:\n' +
        '\n'.join(diff) + '\nIf the change is intended, run '
        f'`{SNAP.REGENERATE} --update {path}` and commit the snapshot.')


def test_every_snapshot_config_still_exists():
    gone = sorted(set(EXPECTED) - set(LEAVES))
    assert not gone, (
        f'config paths in the snapshot no longer exist: {gone}; an existing '
        'config path must keep working (keep a file that inherits the new '
        'one)')


def test_flatten_is_json_stable():
    assert SNAP.flatten({'a': (1, [2.5, None]), 'b': {}, 'c': []}) == \
        SNAP.flatten({'c': [], 'b': {}, 'a': [1, (2.5, None)]}) == {
            'a[0]': 1, 'a[1][0]': 2.5, 'a[1][1]': None, 'b': {}, 'c': []}
    assert SNAP.differences({'x': 1, 'y': 2}, {'x': 1, 'y': 3, 'z': 0}) == [
        '  ~ y: 2 -> 3', '  + z: 0 (not in snapshot)']
