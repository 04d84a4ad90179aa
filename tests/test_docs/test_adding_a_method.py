# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The worked example of docs/adding_a_method.md runs as written."""
import os.path as osp
import re

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.runner import Runner

from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult
from mmreid_usl.utils import register_all_modules

from tiny_config import tiny_model

register_all_modules(init_default_scope=False)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOC = osp.join(REPO, 'docs', 'adding_a_method.md')


def _blocks():
    text = open(DOC, encoding='utf-8').read()
    return re.findall(r'```python\n(.*?)```', text, flags=re.S)


def _register_example():
    if MODELS.get('MomentumClusterContrast') is None:
        exec(compile(_blocks()[0], DOC, 'exec'), {})  # noqa: S102
    return MODELS.get('MomentumClusterContrast')


def _doc_cfg(tmp_path, root, work_dir, max_epochs):
    """The doc's model base (relative _base_ resolved), on tiny data."""
    base = _blocks()[1].replace(
        "'../pseudo_label/dbscan_jaccard.py'",
        repr(osp.join(REPO, 'configs/_base_/pseudo_label/dbscan_jaccard.py')))
    path = tmp_path / 'momentum_cluster_contrast_tiny.py'
    path.write_text(base)
    doc = Config.fromfile(str(path))
    from tiny_config import tiny_cfg
    cfg = tiny_cfg(root, work_dir, max_epochs=max_epochs, with_val=True)
    model = doc.model.to_dict()
    model['encoder'] = tiny_model()['encoder']
    cfg.model = model
    cfg.default_hooks.momentum_update = doc.default_hooks.momentum_update
    cfg.val_cfg = doc.val_cfg
    return cfg


def test_example_class_declares_banks_and_trains_its_memory():
    cls = _register_example()
    model = cls(encoder=tiny_model()['encoder'], cluster_encoder='student')
    model.init_weights()
    assert model.pseudo_label_banks == ('student', 'momentum')
    model.check_contract()
    g = torch.Generator().manual_seed(0)
    banks = {
        k: F.normalize(torch.randn(8, 64, generator=g), dim=1)
        for k in ('student', 'momentum')
    }
    result = PseudoLabelResult.from_labels([0, 0, 1, 1, 2, 2, -1, 0],
                                           banks,
                                           cluster_encoder='student')
    model.set_pseudo_labels(result)
    torch.testing.assert_close(
        model.memory.features,
        F.normalize(result.centroids_of('momentum'), dim=1))
    from mmreid_usl.structures import ReIDDataSample
    samples = [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in range(6)]
    losses = model.loss(torch.randn(6, 3, 32, 16), samples)
    assert set(losses) == {'loss_cluster'}
    losses['loss_cluster'].backward()


def test_example_config_trains_evaluates_and_resumes(tiny_reid_root, tmp_path):
    _register_example()
    work = str(tmp_path / 'run')
    runner = Runner.from_cfg(_doc_cfg(tmp_path, tiny_reid_root, work, 1))
    runner.train()
    metrics = runner.val_loop.run()
    expected = {"student/reid/mAP", "momentum/reid/mAP", "reid/mAP"}
    assert expected <= set(metrics)
    # resume for a second epoch from the first checkpoint
    cfg = _doc_cfg(tmp_path, tiny_reid_root, work, 2)
    cfg.resume, cfg.load_from = True, osp.join(work, 'epoch_1.pth')
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    assert resumed.epoch == 2
    assert resumed.model.memory.num_clusters > 0
