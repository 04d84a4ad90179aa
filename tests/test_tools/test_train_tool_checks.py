# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/train.py stops before building anything on a bad --resume or a bad
--cfg-options (run in-process: these fail before any training starts)."""
import importlib.util
import os.path as osp

import pytest

from tiny_config import tiny_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# main() sets LOCAL_RANK in this process (parse_tool_args): undone after
# each test
pytestmark = pytest.mark.usefixtures('restore_environ')


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


def test_resume_with_nothing_to_resume_exits(train_tool, config_file, tmp_path,
                                             monkeypatch):
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


class _Built(Exception):
    """Raised where tools/train.py would start building the Runner."""


def _stop_before_building(tool, monkeypatch):

    def stop(cfg):
        raise _Built

    monkeypatch.setattr(tool, 'build_runner', stop)


def test_new_run_into_an_earlier_runs_work_dir_is_refused(
        train_tool, config_file, tmp_path, monkeypatch):
    """Issue 24, case 3: a new run wrote its epoch_1/2.pth next to another
    run's epoch_10-12.pth (and a later --resume picked epoch_12)."""
    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir
    work = tmp_path / 'work'
    work.mkdir()
    for name in ('epoch_11.pth', 'epoch_12.pth', 'best_reid_mAP_epoch_8.pth',
                 'last_checkpoint'):
        (work / name).write_bytes(b'earlier run')
    try:
        msg = _fail(train_tool, monkeypatch, config_file, '--work-dir',
                    str(work))
        assert 'holds the checkpoints of an earlier run' in msg
        assert 'epoch_12.pth' in msg
        for way_out in ('--resume', '--work-dir DIR', '--overwrite'):
            assert way_out in msg
        assert [p.name for p in work.iterdir() if p.is_dir()] == []
        assert (work / 'epoch_12.pth').read_bytes() == b'earlier run'

        # --overwrite: the earlier run's checkpoints go, the run starts
        _stop_before_building(train_tool, monkeypatch)
        monkeypatch.setattr('sys.argv', [
            'tools/train.py', config_file, '--work-dir',
            str(work), '--overwrite'
        ])
        with pytest.raises(_Built):
            train_tool.main()
        assert sorted(p.name for p in work.iterdir()) == ['.train.lock']
    finally:
        release_work_dir(str(work))


def test_a_resumed_or_fresh_work_dir_is_accepted(train_tool, config_file,
                                                 tmp_path, monkeypatch):
    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir
    _stop_before_building(train_tool, monkeypatch)
    work = tmp_path / 'fresh'
    try:
        monkeypatch.setattr(
            'sys.argv',
            ['tools/train.py', config_file, '--work-dir',
             str(work)])
        with pytest.raises(_Built):
            train_tool.main()
    finally:
        release_work_dir(str(work))


@pytest.fixture
def stop_at_train(monkeypatch):
    """Runner.train raises _Built; the runner is kept for inspection."""
    built = []

    def train(self):
        built.append(self)
        raise _Built

    monkeypatch.setattr('mmengine.runner.Runner.train', train)
    return built


def _save_tiny_checkpoint(path, depth=18):
    import torch

    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils import register_all_modules
    from tiny_config import tiny_model
    register_all_modules()
    model = tiny_model()
    model['encoder']['backbone']['depth'] = depth
    torch.save({'state_dict': MODELS.build(model).state_dict()}, str(path))


def test_load_from_that_does_not_fit_is_an_error(train_tool, config_file,
                                                 tmp_path, monkeypatch,
                                                 stop_at_train):
    """Issue 24, case 4: load_from of another architecture only warned and
    training went on from the ImageNet initialisation (rc 0)."""
    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir
    ckpt = tmp_path / 'r34.pth'
    _save_tiny_checkpoint(ckpt, depth=34)
    work = tmp_path / 'w'
    try:
        msg = _fail(train_tool, monkeypatch, config_file, '--work-dir',
                    str(work), '--cfg-options', f'load_from={ckpt}')
        assert f'{ckpt} does not fit' in msg
        assert 'unexpected keys' in msg
        assert 'encoder.backbone.layer1.2.conv1.weight' in msg
        assert '--partial-load' in msg
        assert not stop_at_train  # never trained
        # deliberately partial
        monkeypatch.setattr('sys.argv', [
            'tools/train.py', config_file, '--work-dir',
            str(work), '--partial-load', '--cfg-options', f'load_from={ckpt}'
        ])
        with pytest.raises(_Built):
            train_tool.main()
        msg = _fail(train_tool, monkeypatch, config_file, '--work-dir',
                    str(tmp_path / 'w2'), '--cfg-options',
                    f'load_from={tmp_path / "missing.pth"}')
        assert 'no such checkpoint file' in msg
    finally:
        release_work_dir(str(work))
        release_work_dir(str(tmp_path / 'w2'))


def test_load_from_that_fits_skips_the_imagenet_download(
        train_tool, config_file, tmp_path, monkeypatch, stop_at_train):
    """Issue 24, case 8: a stage-2 run downloaded the ImageNet weights that
    its stage-1 checkpoint replaces (and failed offline)."""
    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir
    ckpt = tmp_path / 'stage1.pth'
    _save_tiny_checkpoint(ckpt)
    work = tmp_path / 'w'
    monkeypatch.setattr('sys.argv', [
        'tools/train.py', config_file, '--work-dir',
        str(work), '--cfg-options', f'load_from={ckpt}',
        'model.encoder.backbone.init_cfg.type=Pretrained',
        'model.encoder.backbone.init_cfg.checkpoint=torchvision://resnet18'
    ])
    try:
        with pytest.raises(_Built):
            train_tool.main()
    finally:
        release_work_dir(str(work))
    (runner, ) = stop_at_train
    assert runner.model.encoder.backbone.init_cfg is None


def test_resume_of_a_finished_run_says_so(train_tool, config_file, tmp_path,
                                          monkeypatch):
    """Issue 24, case 5: --resume of epoch_12.pth of a 12-epoch run trained
    nothing and exited 0 with the old final metrics."""
    import torch
    work = tmp_path / 'done'
    work.mkdir()
    torch.save({
        'meta': {
            'epoch': 2,
            'iter': 6
        },
        'state_dict': {}
    }, str(work / 'epoch_2.pth'))  # the config has max_epochs=2
    msg = _fail(train_tool, monkeypatch, config_file, '--work-dir', str(work),
                '--resume')
    assert 'is at epoch 2' in msg and 'train_cfg.max_epochs is 2' in msg
    assert 'that run has finished' in msg
    assert '--cfg-options train_cfg.max_epochs=N' in msg


def test_the_nan_advice_repeats_this_command_line(train_tool, config_file,
                                                  tmp_path, monkeypatch):
    """The model raises NonFiniteLossError; tools/train.py prints the
    command that restarts this very run (its options, a lower lr)."""
    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir
    from mmreid_usl.models import NonFiniteLossError

    def diverge(self):
        raise NonFiniteLossError({'loss': float('nan')})

    monkeypatch.setattr('mmengine.runner.Runner.train', diverge)
    work = tmp_path / 'w'
    try:
        msg = _fail(train_tool, monkeypatch, config_file, '--work-dir',
                    str(work), '--no-validate', '--cfg-options',
                    'optim_wrapper.optimizer.lr=10000000000.0',
                    'train_cfg.max_epochs=1')
    finally:
        release_work_dir(str(work))
    assert msg.startswith('tools/train.py: error: Non-finite loss (loss=nan)')
    assert (f'python tools/train.py {config_file} --work-dir {work} '
            '--no-validate --cfg-options train_cfg.max_epochs=1 '
            'optim_wrapper.optimizer.lr=3.5e-05') in msg
    assert 'This run has saved no checkpoint yet' in msg


def test_batch_size_override_of_a_paper_config_names_the_global_batch(
        train_tool, tmp_path, monkeypatch):
    work = tmp_path / 'w'
    msg = _fail(
        train_tool, monkeypatch,
        osp.join(REPO, 'configs/cluster_contrast/'
                 'cluster-contrast_r50_market.py'), '--work-dir', str(work),
        '--cfg-options', 'train_dataloader.batch_size=16')
    assert 'train_dataloader.global_batch_size=256' in msg
    assert not work.exists()


def test_offline_imagenet_weights_are_one_line(train_tool, config_file,
                                               tmp_path, monkeypatch):
    from urllib.error import URLError

    from mmreid_usl.engine.checkpointing.work_dir_lock import release_work_dir

    def no_network(url, dst, *args, **kwargs):
        raise URLError('[Errno 101] Network is unreachable')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setattr('torch.hub.download_url_to_file', no_network)
    work = tmp_path / 'w'
    try:
        msg = _fail(
            train_tool, monkeypatch, config_file, '--work-dir', str(work),
            '--cfg-options', 'model.encoder.backbone.init_cfg.type=Pretrained',
            'model.encoder.backbone.init_cfg.checkpoint='
            'torchvision://resnet18')
    finally:
        release_work_dir(str(work))
    assert msg.startswith('tools/train.py: error: cannot download https://')
    assert 'put the file resnet18-' in msg
    assert f'{tmp_path}/torch_home/hub/checkpoints/' in msg
    assert '\n' not in msg
