# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import pytest
import torch
from mmengine.logging import MessageHub

from mmreid_usl.utils import nan_advice
from mmreid_usl.utils.nan_advice import (INFO_CONFIG, INFO_LAST_CKPT,
                                         INFO_LR, INFO_WORK_DIR,
                                         nan_loss_message,
                                         set_restart_command, suggested_lr)


@pytest.fixture(autouse=True)
def no_recorded_command(monkeypatch):
    """Each test starts without a recorded tools/train.py command line."""
    monkeypatch.setattr(nan_advice, '_command', None)


def _checkpoints(folder, *epochs):
    for epoch in epochs:
        torch.save({'meta': {}, 'state_dict': {}},
                   str(folder / f'epoch_{epoch}.pth'))


def test_message_gives_the_restart_command(tmp_path):
    _checkpoints(tmp_path, 1, 2)
    hub = MessageHub.get_instance('test_nan_advice')
    hub.update_info(INFO_CONFIG, 'configs/x/y.py')
    hub.update_info(INFO_WORK_DIR, str(tmp_path))
    hub.update_info(INFO_LR, 3.5e-4)
    hub.update_info(INFO_LAST_CKPT, str(tmp_path / 'epoch_2.pth'))
    msg = nan_loss_message({'loss': float('nan'), 'loss_cluster': 1.0})
    assert 'loss=nan' in msg and 'loss_cluster=1' in msg
    ckpt = osp.join(str(tmp_path), 'epoch_2.pth')
    assert (f'python tools/train.py configs/x/y.py --work-dir {tmp_path} '
            f'--resume {ckpt} --cfg-options optim_wrapper.optimizer.lr='
            '3.5e-05') in msg


def test_restart_keeps_the_users_command_and_its_own_checkpoint(tmp_path):
    """Issue 24, case 5: the advice resumed the newest epoch_N.pth of the
    folder (a finished earlier run's epoch_12), dropped the user's options
    and suggested a tenth of an absurd lr."""
    _checkpoints(tmp_path, 1, 12)  # epoch_12.pth: not this run's
    hub = MessageHub.get_instance('test_nan_advice_own')
    hub.update_info(INFO_WORK_DIR, str(tmp_path))
    hub.update_info(INFO_LR, 1e10)
    # the last checkpoint this run saved (recorded by MMEngine's hook)
    hub.update_info(INFO_LAST_CKPT, '/elsewhere/epoch_1.pth')
    set_restart_command(
        'configs/x/y.py',
        str(tmp_path),
        flags=['--amp'],
        cfg_options=[
            'optim_wrapper.optimizer.lr=1e10', 'train_cfg.max_epochs=3',
            'load_from=x.pth'
        ],
        config_lr=3.5e-4)
    msg = nan_loss_message({'loss': float('nan')})
    ckpt = osp.join(str(tmp_path), 'epoch_1.pth')
    assert (f'python tools/train.py configs/x/y.py --work-dir {tmp_path} '
            f'--amp --resume {ckpt} --cfg-options train_cfg.max_epochs=3 '
            'optim_wrapper.optimizer.lr=3.5e-05') in msg
    assert 'epoch_12' not in msg and '1e+09' not in msg
    assert "above the config file's 0.00035" in msg


def test_suggested_lr():
    assert suggested_lr(1e-3, 1e-3) == pytest.approx(1e-4)
    assert suggested_lr(1e10, 3.5e-4) == pytest.approx(3.5e-5)
    assert suggested_lr(1e-5, 3.5e-4) == pytest.approx(1e-6)
    assert suggested_lr(None, 3.5e-4) == pytest.approx(3.5e-5)
    assert suggested_lr(None, None) is None


def test_message_without_checkpoint_or_runner(tmp_path):
    hub = MessageHub.get_instance('test_nan_advice_empty')
    hub.update_info(INFO_WORK_DIR, str(tmp_path))
    msg = nan_loss_message({'loss': float('inf')})
    assert 'This run has saved no checkpoint yet' in msg
    assert f'python tools/train.py CONFIG --work-dir {tmp_path} ' \
        '--cfg-options optim_wrapper.optimizer.lr=LOWER_LR' in msg


def test_loss_tensors_of_the_graph_give_no_warning(tmp_path):
    """Issue 24, case 12: the NaN message warned 'Converting a tensor with
    requires_grad=True to a scalar'."""
    import warnings
    MessageHub.get_instance('test_nan_advice_tensor')
    loss = torch.tensor(float('nan'), requires_grad=True) * 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        msg = nan_loss_message({'loss': loss, 'loss_x': torch.tensor(1.)})
    assert 'loss=nan' in msg and 'loss_x=1' in msg
