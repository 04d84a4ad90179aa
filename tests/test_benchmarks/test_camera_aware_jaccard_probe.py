# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/camera_aware_jaccard_probe.py`` end to end on the tiny
fixture, and its camera-split Jaccard against the camera-agnostic case."""
import os.path as osp
import sys

import numpy as np
import torch
from script_loader import load_script

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/gds/gds-h_r50_duke2market.py')


def _probe():
    return load_script('benchmarks/camera_aware_jaccard_probe.py', '_cajp')


def test_jaccard_is_a_distance_and_camera_split_changes_it():
    probe = _probe()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(24, 8, generator=g)
    camids = np.repeat([1, 2], 12)
    agnostic = probe.camera_split_jaccard(feats, camids, 5, 0, 3)
    split = probe.camera_split_jaccard(feats, camids, 3, 3, 3)
    for dist in (agnostic, split):
        assert dist.shape == (24, 24)
        assert np.allclose(dist, dist.T)
        assert np.allclose(np.diag(dist), 0)
        assert (dist >= -1e-9).all() and (dist <= 1 + 1e-9).all()
    assert not np.allclose(agnostic, split)


def test_main_on_tiny_data(tiny_reid_root, tmp_path, monkeypatch):
    from mmengine.config import Config

    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(CONFIG)
    cfg.model.encoder.backbone.init_cfg = None
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'model.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    monkeypatch.setattr(sys, 'argv', [
        'probe', CONFIG, ckpt, '--settings', '5,0', '2,3', '--rho', '0.05',
        '--cfg-options', 'model.encoder.backbone.init_cfg=None',
        f'cluster_dataloader.dataset.data_root={tiny_reid_root}',
        'cluster_dataloader.dataset.pipeline.1.scale=(16,32)',
        'cluster_dataloader.num_workers=0'
    ])
    rows = _probe().main()
    assert [(r['k_intra'], r['k_inter']) for r in rows] == [(5, 0), (2, 3)]
    for row in rows:
        assert row['eps'] > 0
        assert 0 <= row['single_camera_clusters'] <= 1
        assert row['clusters'] >= 0 and row['outliers'] >= 0
