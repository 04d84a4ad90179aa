# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest

from mmreid_usl.engine.checkpointing.work_dir_reuse import (
    WorkDirNotEmptyError, check_new_run, earlier_run_files)


def test_only_checkpoint_files_count_as_an_earlier_run(tmp_path):
    for name in ('20240101_000000', 'tiny.py', '.train.lock', 'notes.txt',
                 'epoch_x.pth', 'published-1234.pth'):
        (tmp_path / name).write_text('')
    assert earlier_run_files([str(tmp_path)]) == []
    assert check_new_run([str(tmp_path), str(tmp_path / 'missing')]) == []


def test_overwrite_deletes_only_the_earlier_runs_checkpoints(tmp_path):
    out = tmp_path / 'ckpts'
    out.mkdir()
    names = [
        'epoch_3.pth', 'iter_40.pth', 'best_reid_mAP_epoch_2.pth',
        'last_checkpoint', 'epoch_4.pth.partial'
    ]
    for name in names:
        (tmp_path / name).write_text('')
    (out / 'epoch_1.pth').write_text('')
    (tmp_path / 'tiny.py').write_text('')
    folders = [str(tmp_path), str(out)]
    with pytest.raises(WorkDirNotEmptyError, match='--overwrite'):
        check_new_run(folders)
    assert len(earlier_run_files(folders)) == len(names) + 1
    deleted = check_new_run(folders, overwrite=True)
    assert len(deleted) == len(names) + 1
    assert earlier_run_files(folders) == []
    assert (tmp_path / 'tiny.py').is_file()
