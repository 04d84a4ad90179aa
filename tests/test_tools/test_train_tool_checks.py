# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/train.py stops before building anything on a bad --resume or a bad
--cfg-options (run in-process: these fail before any training starts)."""
import importlib.util
import os.path as osp

import pytest

from tiny_config import tiny_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def train_tool():
    spec = importlib.util.spec_from_file_location(
        'tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def config_file(tiny_reid_root, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('checks_cfg') / 'tiny_cc.py')
    cfg = tiny_cfg(tiny_reid_root, 'unused', max_epochs=2)
    cfg.pop('work_dir')
    cfg.dump(path)
    return path


def _fail(tool, monkeypatch, *argv) -> str:
    """Run ``main()``; it must exit with an error; returns the message."""
    monkeypatch.setattr('sys.argv', ['tools/train.py', *argv])
    with pytest.raises(SystemExit) as err:
        tool.main()
    assert err.value.code not in (0, None)
    return str(err.value.code)


def test_resume_with_nothing_to_resume_exits(train_tool, config_file,
                                             tmp_path, monkeypatch):
    typo = tmp_path / 'wrok_dirs' / 'run'
    msg = _fail(train_tool, monkeypatch, config_file, '--work-dir', str(typo),
                '--resume')
    assert 'nothing to resume' in msg and str(typo) in msg
    assert 'does not exist' in msg
    assert not typo.exists()  # nothing was started
    typo.mkdir(parents=True)
    msg = _fail(train_tool, monkeypatch, config_file, '--work-dir', str(typo),
                '--resume')
    assert 'holds no epoch_N.pth' in msg
    msg = _fail(train_tool, monkeypatch, config_file, '--work-dir', str(typo),
                '--resume', str(tmp_path / 'epoch_3.pth'))
    assert 'no such checkpoint file' in msg


@pytest.mark.parametrize('option,expected', [
    ('trian_cfg.max_epochs=1', "Did you mean 'train_cfg.max_epochs'?"),
    ('train_cfg.max_epochs=abc', "train_cfg.max_epochs='abc': expected an "
     'int'),
    ('optim_wrapper.optimizer.lr=abc', 'optim_wrapper.optimizer.lr='),
    ('default_hooks.pseudo_label.labeler.clusterer.eps=abc',
     'default_hooks.pseudo_label.labeler.clusterer.eps='),
])
def test_bad_cfg_options_are_rejected_naming_the_option(
        train_tool, config_file, tmp_path, monkeypatch, option, expected):
    work = tmp_path / 'w'
    msg = _fail(train_tool, monkeypatch, config_file, '--work-dir', str(work),
                '--cfg-options', option)
    assert expected in msg
    assert not work.exists()


def test_plain_checkpoint_hook_is_upgraded(train_tool, config_file):
    from mmengine.config import Config
    cfg = Config.fromfile(config_file)
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    train_tool.ensure_robust_hooks(cfg)
    assert cfg.default_hooks.checkpoint.type == 'WorkDirCheckpointHook'
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
    cfg.default_hooks.random_state = None  # switched off explicitly
    train_tool.ensure_robust_hooks(cfg)
    assert 'random_state' not in cfg.default_hooks
