# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The one rank-list renderer (mmreid_usl.visualization.ranklist)."""
import importlib.util
import os.path as osp

import mmcv
import numpy as np

from mmreid_usl.visualization import (MATCH_COLOR, RankItem, RankRow,
                                      draw_ranklist, draw_search_results)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def test_draw_ranklist(tmp_path):
    person = np.zeros((64, 32, 3), np.uint8)
    person[:, :, 2] = 200  # BGR red
    rows = [
        RankRow(person, 'id 1  cam 1', [
            RankItem.matched(person, 'd=0.100', True),
            RankItem(str(tmp_path / 'missing.jpg'), 'grey: unreadable'),
        ]),
        RankRow(person[..., 0], 'a grey query', [RankItem(person, 'x')]),
    ]
    out = str(tmp_path / 'sub' / 'ranklist.png')
    img = draw_ranklist(rows, out, 'a title\nover two lines')
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    saved = mmcv.imread(out, channel_order='rgb')
    assert saved.shape == img.shape
    # the green frame of the match is drawn (the palette keeps it close)
    near = np.abs(saved.astype(int) - _rgb(MATCH_COLOR)).sum(-1) < 30
    assert near.sum() > 100
    # other formats are written by matplotlib
    jpg = str(tmp_path / 'ranklist.jpg')
    draw_ranklist(rows, jpg, 'a title\nover two lines')
    assert mmcv.imread(jpg).shape[:2] == img.shape[:2]


def test_search_results_picture(tmp_path):
    person = np.full((64, 32, 3), 90, np.uint8)
    results = [
        dict(query='0001_c1s1_000001_00.jpg',
             paths=['a.jpg', 'b.jpg'],
             scores=[0.9, 0.5],
             pids=[1, 2],
             camids=[1, 0])
    ]
    ids = (np.array([1]), np.array([0]))
    with_ids = draw_search_results([person], results, ids,
                                   str(tmp_path / 'ids.png'))
    plain = draw_search_results([person], results, None,
                                str(tmp_path / 'plain.png'))
    assert with_ids.shape[1] == plain.shape[1]
    assert with_ids.shape[0] > plain.shape[0]  # taller rows for the ids


def test_one_renderer_for_the_inferencer_and_the_tool():
    from mmreid_usl.apis import inferencer
    from mmreid_usl.visualization import ranklist
    assert inferencer.draw_search_results is ranklist.draw_search_results
    path = osp.join(REPO, 'tools', 'analysis_tools', 'visualize_ranklist.py')
    spec = importlib.util.spec_from_file_location('visualize_ranklist', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.render_ranklist is ranklist.draw_ranklist
    assert importlib.util.find_spec('mmreid_usl.apis._search_figure') is None
