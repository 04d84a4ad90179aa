# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The restart advice after a non-finite loss (issue 24, case 5)."""
import os.path as osp
import warnings

import pytest
import torch

from mmreid_usl.engine.checkpointing.restart import (cfg_option_tokens,
                                                     restart_advice,
                                                     suggested_lr)
from mmreid_usl.models import NonFiniteLossError


def _checkpoints(folder, *epochs):
    for epoch in epochs:
        torch.save({
            'meta': {},
            'state_dict': {}
        }, str(folder / f'epoch_{epoch}.pth'))


def test_message_gives_the_restart_command(tmp_path):
    _checkpoints(tmp_path, 1, 2)
    msg = restart_advice({
        'loss': float('nan'),
        'loss_cluster': 1.0
    },
                         config='configs/x/y.py',
                         work_dir=str(tmp_path),
                         run_lr=3.5e-4,
                         last_checkpoint=str(tmp_path / 'epoch_2.pth'))
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
    msg = restart_advice(
        {'loss': float('nan')},
        config='configs/x/y.py',
        work_dir=str(tmp_path),
        flags=['--amp'],
        cfg_options=[
            'optim_wrapper.optimizer.lr=1e10', 'train_cfg.max_epochs=3',
            'load_from=x.pth'
        ],
        run_lr=1e10,
        config_lr=3.5e-4,
        # the last checkpoint this run saved (recorded by MMEngine's hook)
        last_checkpoint='/elsewhere/epoch_1.pth')
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


def test_message_without_checkpoint(tmp_path):
    msg = restart_advice({'loss': float('inf')}, work_dir=str(tmp_path))
    assert 'This run has saved no checkpoint yet' in msg
    assert f'python tools/train.py CONFIG --work-dir {tmp_path} ' \
        '--cfg-options optim_wrapper.optimizer.lr=LOWER_LR' in msg


def test_cfg_option_tokens():
    argv = [
        'c.py', '--cfg-options', 'a=1', 'b=2', '--amp', '--cfg-options=c=3'
    ]
    assert cfg_option_tokens(argv) == ['a=1', 'b=2', 'c=3']


def test_loss_tensors_of_the_graph_give_no_warning():
    """Issue 24, case 12: the NaN message warned 'Converting a tensor with
    requires_grad=True to a scalar'."""
    loss = torch.tensor(float('nan'), requires_grad=True) * 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        err = NonFiniteLossError({'loss': loss, 'loss_x': torch.tensor(1.)})
        msg = restart_advice(err.terms)
    assert 'loss=nan' in str(err) and 'loss_x=1' in str(err)
    assert isinstance(err, FloatingPointError)
    assert 'loss=nan' in msg and 'loss_x=1' in msg
