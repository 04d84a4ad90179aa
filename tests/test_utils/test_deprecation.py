# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The helpers that keep renamed arguments, keys, attributes and flags
working under their old names, with a ``DeprecatedNameWarning``."""
import argparse
import inspect
import warnings

import pytest

from mmreid_usl.utils.build import accepted_init_keys
from mmreid_usl.utils.deprecation import (UNSET, DeprecatedFlagAction,
                                          DeprecatedNameWarning,
                                          renamed_attribute, renamed_keys,
                                          renamed_kwargs)


@renamed_kwargs(feat_source='encoder')
def _pick(x, encoder='student', **kwargs):
    return encoder, kwargs


class _Memory:

    feat_source = renamed_attribute('feat_source', 'encoder')

    @renamed_kwargs(feat_source='encoder')
    def __init__(self, encoder=None):
        self.encoder = encoder


def test_renamed_kwargs_passes_the_old_name_on_with_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the new name does not warn
        assert _pick(1, encoder='momentum') == ('momentum', {})
        assert _pick(1) == ('student', {})
    with pytest.warns(DeprecatedNameWarning,
                      match='`feat_source` is deprecated, use `encoder`'):
        assert _pick(1, feat_source='momentum') == ('momentum', {})
    # next to the new name at its default (a base config sets it, the
    # command line adds the old name), the old name wins
    with pytest.warns(DeprecatedNameWarning):
        assert _pick(1, feat_source='momentum',
                     encoder='student') == ('momentum', {})
    with pytest.raises(TypeError, match='got both `encoder`'):
        _pick(1, feat_source='momentum', encoder='ema')


def test_renamed_kwargs_shows_the_old_names_in_the_signature():
    params = inspect.signature(_pick).parameters
    assert params['feat_source'].kind is inspect.Parameter.KEYWORD_ONLY
    assert params['feat_source'].default is UNSET
    assert list(params)[-1] == 'kwargs'  # **kwargs stays last
    # so a config with the old key passes build_module's key check
    assert {'encoder', 'feat_source'} <= accepted_init_keys(_Memory)


def test_renamed_kwargs_names_the_class_of_an_init():
    with pytest.warns(DeprecatedNameWarning, match='^_Memory: '):
        mem = _Memory(feat_source='momentum')
    assert mem.encoder == 'momentum'


def test_renamed_attribute_reads_and_writes_the_new_one():
    mem = _Memory(encoder='student')
    with pytest.warns(DeprecatedNameWarning, match='use `encoder`'):
        assert mem.feat_source == 'student'
    with pytest.warns(DeprecatedNameWarning):
        mem.feat_source = 'momentum'
    assert mem.encoder == 'momentum'


def test_renamed_keys_of_a_dict():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert renamed_keys('X.test_cfg', None, {'feat_source': 'encoder'}) \
            is None
        assert renamed_keys('X.test_cfg', {'encoder': 'momentum'},
                            {'feat_source': 'encoder'}) == {
                                'encoder': 'momentum'
                            }
    cfg = {'feat_source': 'momentum', 'normalize': False}
    with pytest.warns(DeprecatedNameWarning, match='X.test_cfg: '):
        out = renamed_keys('X.test_cfg', cfg, {'feat_source': 'encoder'})
    assert out == {'encoder': 'momentum', 'normalize': False}
    assert 'feat_source' in cfg  # a copy
    with pytest.warns(DeprecatedNameWarning):
        assert renamed_keys('X', {
            'feat_source': 'momentum',
            'encoder': 'student'
        }, {'feat_source': 'encoder'}, {'encoder': 'student'}) == {
            'encoder': 'momentum'
        }
    with pytest.raises(TypeError, match='got both'):
        renamed_keys('X', {
            'feat_source': 'momentum',
            'encoder': 'student'
        }, {'feat_source': 'encoder'}, {'encoder': 'momentum'})


def test_deprecated_flag_action():
    parser = argparse.ArgumentParser(prog='tool.py')
    parser.add_argument(
        '--encoder',
        '--feat-source',
        action=DeprecatedFlagAction,
        deprecated=['--feat-source'],
        choices=['student', 'momentum'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert parser.parse_args(['--encoder', 'student']).encoder == \
            'student'
        assert parser.parse_args([]).encoder is None
    with pytest.warns(DeprecatedNameWarning,
                      match='tool.py: `--feat-source` is deprecated, use '
                      '`--encoder`'):
        args = parser.parse_args(['--feat-source', 'momentum'])
    assert args.encoder == 'momentum' and not hasattr(args, 'feat_source')
