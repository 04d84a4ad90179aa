# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The stage-1 -> adaptation hand-off (issue 25 item 6): one option,
``stage1_checkpoint``, reaching the encoder's ``init_cfg`` (``Pretrained``,
``prefix='encoder.'``) with the fits check; ``load_from`` of the stage-1
checkpoint (issue 23's command) still works; no config hard-codes a
``work_dirs`` path."""
import glob
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner.checkpoint import load_checkpoint

from mmreid_usl.engine.checkpointing import CheckpointMismatchError
from mmreid_usl.engine.checkpointing.stage1 import (Stage1CheckpointError,
                                                    apply_stage1_checkpoint,
                                                    check_start_checkpoint)
from mmreid_usl.registry import MODELS
from mmreid_usl.utils import register_all_modules

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
STAGE1 = 'configs/gds/source-pretrain_r18_synthetic-a.py'
STAGE2 = 'configs/gds/theory_r18_synthetic-a2b.py'

register_all_modules(init_default_scope=False)


def _cfg(path):
    return Config.fromfile(osp.join(REPO, path))


@pytest.fixture(scope='module')
def stage1_ckpt(tmp_path_factory):
    """A stage-1 checkpoint whose every float tensor moved from its init."""
    torch.manual_seed(0)
    model = MODELS.build(_cfg(STAGE1).model)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    path = str(tmp_path_factory.mktemp('s1') / 'epoch_30.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def test_no_config_hard_codes_a_work_dir_checkpoint():
    for path in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                          recursive=True):
        assert 'work_dirs' not in open(path).read(), path
    cfg = _cfg(STAGE2)
    assert cfg.stage1_checkpoint is None and cfg.load_from is None
    assert cfg.stage1_config == STAGE1


def test_missing_stage1_checkpoint_names_option_and_command(tmp_path):
    cfg = _cfg(STAGE2)
    with pytest.raises(Stage1CheckpointError) as err:
        apply_stage1_checkpoint(cfg, STAGE2)
    msg = str(err.value)
    assert 'stage1_checkpoint' in msg
    assert f'python tools/train.py {STAGE1}' in msg
    assert 'work_dirs/source-pretrain_r18_synthetic-a/epoch_30.pth' in msg
    cfg.stage1_checkpoint = False  # deliberately none (smoke tests)
    assert apply_stage1_checkpoint(cfg, STAGE2) is None
    cfg.stage1_checkpoint = str(tmp_path / 'nope.pth')
    with pytest.raises(Stage1CheckpointError, match='no such checkpoint'):
        apply_stage1_checkpoint(cfg, STAGE2)


def test_option_sets_the_encoder_init_cfg(stage1_ckpt):
    cfg = _cfg(STAGE2)
    cfg.stage1_checkpoint = stage1_ckpt
    assert apply_stage1_checkpoint(cfg, STAGE2) == stage1_ckpt
    assert cfg.model.encoder.init_cfg == dict(
        type='Pretrained', checkpoint=stage1_ckpt, prefix='encoder.')
    # both options: an error; on resume nothing is loaded from it
    cfg = _cfg(STAGE2)
    cfg.stage1_checkpoint, cfg.load_from = stage1_ckpt, stage1_ckpt
    with pytest.raises(Stage1CheckpointError, match='both'):
        apply_stage1_checkpoint(cfg)
    cfg.load_from, cfg.resume = None, True
    assert apply_stage1_checkpoint(cfg) is None
    assert not cfg.model.encoder.get('init_cfg')


def test_load_from_stays_accepted(stage1_ckpt):
    """Issue 23: a stage-2 config takes the stage-1 checkpoint as
    ``--cfg-options load_from=CKPT`` (a whole-model load, checked)."""
    cfg = _cfg(STAGE2)
    cfg.load_from = stage1_ckpt
    assert apply_stage1_checkpoint(cfg, STAGE2) is None
    model = MODELS.build(cfg.model)
    assert check_start_checkpoint(model, cfg)


def _stage2(how, ckpt):
    cfg = _cfg(STAGE2)
    setattr(cfg, how, ckpt)
    apply_stage1_checkpoint(cfg, STAGE2)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    assert check_start_checkpoint(model, cfg)
    model.init_weights()
    if how == 'load_from':  # what the Runner then does
        load_checkpoint(model, ckpt, map_location='cpu', strict=False)
    return model


def test_same_weights_as_load_from(stage1_ckpt):
    """The hand-off through init_cfg starts from the weights that
    load_from gave (the shipped stage-1 configs train no GDS statistics)."""
    new = _stage2('stage1_checkpoint', stage1_ckpt).state_dict()
    old = _stage2('load_from', stage1_ckpt).state_dict()
    assert set(new) == set(old)
    for key in new:
        assert torch.equal(new[key], old[key]), key
    state1 = torch.load(stage1_ckpt, weights_only=True)['state_dict']
    for key, value in new.items():
        if key.startswith('encoder.'):
            assert torch.equal(value, state1[key]), key


def test_a_checkpoint_that_does_not_fit(tmp_path):
    cfg1 = _cfg(STAGE1)
    cfg1.model.encoder.backbone.depth = 34
    path = str(tmp_path / 'r34.pth')
    torch.save({'state_dict': MODELS.build(cfg1.model).state_dict()}, path)
    cfg = _cfg(STAGE2)
    cfg.stage1_checkpoint = path
    apply_stage1_checkpoint(cfg, STAGE2)
    model = MODELS.build(cfg.model)
    with pytest.raises(CheckpointMismatchError) as err:
        check_start_checkpoint(model, cfg)
    assert 'unexpected keys' in str(err.value)
    assert 'stage1_checkpoint' in str(err.value)
    assert check_start_checkpoint(model, cfg, allow_partial=True) is False


def test_imagenet_weights_it_replaces_are_not_loaded(tmp_path):
    """Issue 24 case 8: the MobileNetV2 ImageNet init is skipped, the
    encoder's own stage-1 init kept (no download)."""
    cfg = _cfg('configs/gds/theory_mbv2_cuhk03-cam3to10-to-cam1to2.py')
    imagenet = cfg.model.encoder.backbone.init_cfg
    assert imagenet.type == 'Pretrained'
    cfg.model.encoder.backbone.init_cfg = None
    state = MODELS.build(cfg.model).state_dict()
    cfg.model.encoder.backbone.init_cfg = imagenet
    path = str(tmp_path / 'stage1.pth')
    torch.save({'state_dict': state}, path)
    cfg.stage1_checkpoint = path
    apply_stage1_checkpoint(cfg)
    model = MODELS.build(cfg.model)
    assert check_start_checkpoint(model, cfg)
    assert model.encoder.backbone.init_cfg is None
    assert model.encoder.init_cfg['checkpoint'] == path
    model.init_weights()  # reads only the stage-1 file
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_train_tool_without_stage1_checkpoint(tmp_path, monkeypatch,
                                              restore_environ):
    # tools/train.py's main() in this process (run from the repository
    # root, as a user would): it exits before building anything
    spec = importlib.util.spec_from_file_location(
        'tools_train', osp.join(REPO, 'tools', 'train.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(
        'sys.argv',
        ['tools/train.py', STAGE2, '--work-dir', str(tmp_path / 'w')])
    with pytest.raises(SystemExit) as err:
        tool.main()
    stderr = str(err.value.code)  # what a subprocess prints on stderr
    assert err.value.code not in (0, None)
    assert 'stage1_checkpoint' in stderr
    assert f'python tools/train.py {STAGE1}' in stderr
    assert not (tmp_path / 'w').exists()  # nothing was started
