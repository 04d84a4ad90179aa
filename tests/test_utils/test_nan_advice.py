# Copyright (c) mmreid_usl contributors. All rights reserved.
import os.path as osp

import torch
from mmengine.logging import MessageHub

from mmreid_usl.utils.nan_advice import (INFO_CONFIG, INFO_LR, INFO_WORK_DIR,
                                         nan_loss_message)


def test_message_gives_the_restart_command(tmp_path):
    for epoch in (1, 2):
        torch.save({'meta': {}, 'state_dict': {}},
                   str(tmp_path / f'epoch_{epoch}.pth'))
    hub = MessageHub.get_instance('test_nan_advice')
    hub.update_info(INFO_CONFIG, 'configs/x/y.py')
    hub.update_info(INFO_WORK_DIR, str(tmp_path))
    hub.update_info(INFO_LR, 3.5e-4)
    msg = nan_loss_message({'loss': float('nan'), 'loss_cluster': 1.0})
    assert 'loss=nan' in msg and 'loss_cluster=1' in msg
    ckpt = osp.join(str(tmp_path), 'epoch_2.pth')
    assert (f'python tools/train.py configs/x/y.py --work-dir {tmp_path} '
            f'--resume {ckpt} --cfg-options optim_wrapper.optimizer.lr='
            '3.5e-05') in msg


def test_message_without_checkpoint_or_runner(tmp_path):
    hub = MessageHub.get_instance('test_nan_advice_empty')
    hub.update_info(INFO_WORK_DIR, str(tmp_path))
    msg = nan_loss_message({'loss': float('inf')})
    assert 'No checkpoint has been saved yet' in msg
    assert 'python tools/train.py CONFIG --cfg-options ' \
        'optim_wrapper.optimizer.lr=LOWER_LR' in msg
