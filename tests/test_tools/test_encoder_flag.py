# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``--encoder student|momentum`` of the tools (issue 25 item 8: "source"
only means the source domain); ``--feat-source`` is its deprecated
spelling, accepted with a ``DeprecatedNameWarning``."""
import importlib.util
import os.path as osp
import sys
import warnings

import pytest
from mmengine.config import Config

from mmreid_usl.utils.deprecation import DeprecatedNameWarning

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tool(path):
    name = 'tool_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('path,argv', [
    ('tools/search.py', ['c.py', 'k.pth', '--query', 'q', '--gallery', 'g']),
    ('tools/extract_features.py',
     ['c.py', 'k.pth', '--folder', 'f', '--out', 'o']),
    ('tools/analysis_tools/visualize_ranklist.py', ['c.py', 'k.pth']),
])
def test_tools_take_encoder_and_the_old_flag(path, argv):
    tool = _tool(path)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecatedNameWarning)
        assert tool.parse_args(argv + ['--encoder', 'momentum']).encoder == \
            'momentum'
        assert tool.parse_args(argv).encoder is None
    with pytest.warns(DeprecatedNameWarning,
                      match='`--feat-source` is deprecated, use `--encoder`'):
        args = tool.parse_args(argv + ['--feat-source', 'student'])
    assert args.encoder == 'student'
    with pytest.raises(SystemExit):
        tool.parse_args(argv + ['--encoder', 'ema'])


def test_test_tool_old_flag_sets_test_cfg_encoder(monkeypatch,
                                                  restore_environ):
    # parse_args() sets LOCAL_RANK (parse_tool_args): restore_environ
    # undoes it
    tool = _tool('tools/test.py')
    monkeypatch.setattr(
        sys, 'argv',
        ['tools/test.py', 'c.py', 'k.pth', '--feat-source', 'student'])
    with pytest.warns(DeprecatedNameWarning, match='--feat-source'):
        args = tool.parse_args()
    assert args.encoder == 'student'
    # a config still written with the old key: the flag replaces it
    cfg = Config(
        dict(
            default_hooks=dict(),
            model=dict(test_cfg=dict(feat_source='momentum'))))
    out = tool.merge_args(cfg, args)
    assert out.model.test_cfg == dict(encoder='student')


def test_test_tool_checks_the_encoders_of_the_loop():
    tool = _tool('tools/test.py')

    class _Model:
        test_cfg = dict(encoder='momentum')

    def cfg(**loop):
        return Config(dict(test_cfg=dict(type='MomentumValLoop', **loop)))

    assert tool.test_encoders(cfg(), _Model()) == ['momentum', 'student']
    assert tool.test_encoders(cfg(encoders=['momentum']),
                              _Model()) == ['momentum']
    # ``sources`` is the loop's deprecated name of ``encoders``
    assert tool.test_encoders(cfg(sources=['momentum']),
                              _Model()) == ['momentum']
