# Copyright (c) mmreid_usl contributors. All rights reserved.
"""tools/analysis_tools/camera_link_stats.py."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmreid_usl.utils import register_all_modules
from tiny_config import theory_test_cfg, tiny_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
register_all_modules(init_default_scope=False)


def _tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'camera_link_stats.py')
    spec = importlib.util.spec_from_file_location('camera_link', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _tool()


def _unit(deg):
    rad = np.deg2rad(deg)
    return [np.cos(rad), np.sin(rad)]


def test_hand_computed_example():
    # Angles (degrees) on the unit circle; ids A, B seen by cameras 0 and 1,
    # id C only by camera 0.
    #   i  angle  id cam
    #   0    0    A  0
    #   1    5    A  0
    #   2   10    B  1     <- nearest other-camera image of 0 and 1
    #   3   40    A  1
    #   4   50    B  0
    #   5   90    C  0
    angles = [0, 5, 10, 40, 50, 90]
    pids = np.array([1, 1, 2, 1, 2, 3])
    cams = np.array([0, 0, 1, 1, 0, 0])
    feats = torch.tensor([_unit(a) for a in angles], dtype=torch.float32)
    s = TOOL.camera_link_stats(feats, pids, cams, ks=(1, 2))
    # Same camera, nearest other image: 0->1 (A, hit), 1->0 (hit), 2->3 (B vs
    # A, miss), 3->2 (miss), 4->5 (B vs C, miss; 5 at 40 deg, 1 at 45),
    # 5->4 (miss): 2 / 6.
    assert s['intra_camera_precision@1'] == pytest.approx(2 / 6)
    # k = 2: 0:{1,4}: 1 hit; 1:{0,4}: 1; 2:{3}: 0 (only one other image);
    # 3:{2}: 0; 4:{5,1}: 0; 5:{4,1}: 0 -> 2 hits / 10 neighbours.
    assert s['intra_camera_precision@2'] == pytest.approx(2 / 10)
    # Other cameras, images of A and B only (C has no right answer):
    # 0->2 (miss), 1->2 (miss), 2->1 (miss), 3->4 (miss), 4->3 (miss) -> 0.
    assert s['cross_camera_precision@1'] == 0
    # k = 2: 0:{2,3}: 3 hit; 1:{2,3}: hit; 2:{1,0}: miss; 3:{4,1}: 1 hit;
    # 4:{3,2}: 2 hit -> 4 / 10.
    assert s['cross_camera_precision@2'] == pytest.approx(4 / 10)
    # Mutual nearest other-camera pairs: (1, 2) (1->2, 2->1) and (3, 4):
    # both are two people.
    assert s['mutual_cross_camera_pairs'] == 2
    assert s['mutual_cross_camera_precision'] == 0
    # Group means: A0 at 2.5, A1 at 40, B1 at 10, B0 at 50, C0 at 90.
    # A0 -> B1 (miss), A1 -> B0 (miss), B1 -> A0 (miss), B0 -> A1 (miss).
    assert s['centroid_match_accuracy'] == 0
    # Same-id pairs: A has 3 images (3 pairs, 2 cross-camera), B 2 (1, 1
    # cross), C 1 (0): 3 / 4 cross-camera.
    assert s['cross_camera_positive_fraction'] == pytest.approx(3 / 4)


def test_perfect_features_and_errors():
    rng = np.random.default_rng(0)
    centers = torch.nn.functional.normalize(torch.randn(5, 16), dim=1)
    pids = np.repeat(np.arange(5), 4)
    cams = np.tile([0, 0, 1, 1], 5)
    feats = centers[pids] + 1e-3 * torch.from_numpy(
        rng.standard_normal((20, 16)).astype(np.float32))
    s = TOOL.camera_link_stats(feats, pids, cams, ks=(1, ), chunk_size=7)
    assert s['intra_camera_precision@1'] == 1
    assert s['cross_camera_precision@1'] == 1
    assert s['centroid_match_accuracy'] == 1
    assert s['mutual_cross_camera_precision'] == 1
    assert s['cross_camera_positive_fraction'] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match='two'):
        TOOL.camera_link_stats(feats, pids, np.zeros(20, int))
    with pytest.raises(ValueError, match='must match'):
        TOOL.camera_link_stats(feats, pids[:5], cams)


def test_cli(tiny_reid_root, tmp_path):
    model = tiny_model()
    cfg = Config(theory_test_cfg(tiny_reid_root))
    cfg_path = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_path)
    from mmreid_usl.models import Theory
    torch.manual_seed(0)
    net = Theory(encoder=model['encoder'])
    ckpt = str(tmp_path / 'm.pth')
    torch.save(dict(state_dict=net.state_dict(), meta=dict()), ckpt)
    out = str(tmp_path / 's.json')
    stats = TOOL.main([
        cfg_path, ckpt, '--split', 'test', '--k', '1', '3', '--out-json',
        out, '--device', 'cpu'
    ])
    assert 0 <= stats['cross_camera_precision@3'] <= 1
    assert json.load(open(out)) == pytest.approx(stats, nan_ok=True)
    with pytest.raises(SystemExit):
        TOOL.parse_args([cfg_path, ckpt, '--k', '0'])
