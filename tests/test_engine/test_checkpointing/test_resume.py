# Copyright (c) mmreid_usl contributors. All rights reserved.
import os

import pytest
import torch

from mmreid_usl.engine.checkpointing.resume import (ResumeError,
                                                    find_resume_checkpoint,
                                                    list_checkpoints,
                                                    resolve_resume_path)


def _ckpt(path, epoch):
    torch.save(dict(meta=dict(epoch=epoch), state_dict=dict(w=torch.ones(3))),
               str(path))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_newest_epoch_of_the_folder(tmp_path):
    for epoch in (1, 2, 10):
        _ckpt(tmp_path / f'epoch_{epoch}.pth', epoch)
    _ckpt(tmp_path / 'best_reid_mAP_epoch_11.pth', 11)  # not a resume point
    (tmp_path / 'last_checkpoint').write_text('/elsewhere/epoch_99.pth')
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path))] \
        == ['epoch_10.pth', 'epoch_2.pth', 'epoch_1.pth']
    assert find_resume_checkpoint(str(tmp_path)) == \
        str(tmp_path / 'epoch_10.pth')


@pytest.mark.parametrize('exists', [True, False])
def test_nothing_to_resume_is_an_error(tmp_path, exists):
    folder = tmp_path / 'work'
    if exists:
        folder.mkdir()
    with pytest.raises(ResumeError) as err:
        find_resume_checkpoint(str(folder))
    msg = str(err.value)
    assert str(folder) in msg and 'nothing to resume' in msg
    assert ('does not exist' in msg) != exists


def test_unreadable_newest_names_the_previous_good_one(tmp_path):
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _ckpt(tmp_path / 'epoch_2.pth', 2)
    _ckpt(tmp_path / 'epoch_3.pth', 3)
    _truncate(tmp_path / 'epoch_3.pth')
    with pytest.raises(ResumeError) as err:
        find_resume_checkpoint(str(tmp_path))
    msg = str(err.value)
    assert 'epoch_3.pth cannot be read' in msg
    assert f'--resume {tmp_path / "epoch_2.pth"}' in msg
    assert '--resume-fallback' in msg
    assert find_resume_checkpoint(str(tmp_path), fallback=True) == \
        str(tmp_path / 'epoch_2.pth')
    # an explicit path falls back the same way
    assert resolve_resume_path(
        str(tmp_path / 'epoch_3.pth'), fallback=True) == \
        str(tmp_path / 'epoch_2.pth')
    with pytest.raises(ResumeError, match='no such checkpoint'):
        resolve_resume_path(str(tmp_path / 'epoch_9.pth'))


def test_no_readable_checkpoint_at_all(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ResumeError, match='no older readable'):
        find_resume_checkpoint(str(tmp_path), fallback=True)
