# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Issue 25 item 8: "source" only means the source domain. The options that
named an encoder or the origin of the labels with it were renamed; the old
names keep working with a ``DeprecatedNameWarning`` and the same numbers:

- ``feat_source`` -> ``encoder`` (``test_cfg``, every memory),
- ``cluster_feat_source`` -> ``cluster_encoder``,
- ``mip_update_source`` -> ``mip_update_encoder`` (DCMIP),
- ``label_source`` -> ``labels_from`` (models, ``PseudoIdentitySampler``),
- ``PseudoLabelResult`` / ``PseudoLabeler``: ``feat_source`` ->
  ``cluster_encoder``, ``label_source`` -> ``labels_from``.
"""
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config

from mmreid_usl.clustering import PseudoLabeler
from mmreid_usl.datasets.samplers import PseudoIdentitySampler
from mmreid_usl.models import DCMIP, SupervisedReID, Theory
from mmreid_usl.models.necks.bn_neck import BNNeck
from mmreid_usl.models.utils.reid_encoder import ReIDEncoder
from mmreid_usl.registry import MODELS
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample
from mmreid_usl.utils import register_all_modules
from mmreid_usl.utils.deprecation import DeprecatedNameWarning
from tiny_config import TINY_MODEL, tiny_model

register_all_modules()

DIM = 8
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class _Pool(nn.Module):

    def forward(self, x):
        return x.mean((2, 3))


def _encoder():
    backbone = nn.Sequential(
        nn.Conv2d(3, DIM, 3, padding=1), nn.BatchNorm2d(DIM), nn.ReLU())
    return ReIDEncoder(backbone, _Pool(), BNNeck(DIM))


def _dcmip(**kwargs):
    torch.manual_seed(0)
    model = DCMIP(
        encoder=_encoder(),
        ins_start_epoch=0,
        loss_mip=dict(type='MultiInstanceProxyLoss', num_negatives=5),
        **kwargs)
    model.init_weights()
    return model


def _banks(num=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        name: F.normalize(torch.randn(num, DIM, generator=g), dim=1)
        for name in ('student', 'momentum')
    }


def _batch(result, clusters=(0, 1), k=4):
    idx = []
    for c in clusters:
        idx += torch.nonzero(result.labels == c).flatten()[:k].tolist()
    samples = [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in idx]
    g = torch.Generator().manual_seed(3)
    return torch.randn(len(idx), 3, 8, 4, generator=g), samples


def _train_step(model):
    labels = torch.arange(24) % 4
    result = PseudoLabelResult.from_labels(
        labels, _banks(), cluster_encoder='student', epoch=0)
    model.train()
    model.set_pseudo_labels(result)
    losses = model.loss(*_batch(result))
    return losses, model.instance_memory.features.clone()


def test_dcmip_old_names_same_model_and_numbers():
    """The "without momentum encoder" ablation under its old keys."""
    new_kw = dict(
        cluster_encoder='student',
        mip_update_encoder='student',
        instance_memory=dict(
            type='InstanceProxyMemory', num_instances=4, encoder='student'),
        test_cfg=dict(encoder='student'))
    old_kw = dict(
        cluster_feat_source='student',
        mip_update_source='student',
        instance_memory=dict(
            type='InstanceProxyMemory', num_instances=4,
            feat_source='student'),
        test_cfg=dict(feat_source='student'))
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecatedNameWarning)
        new = _dcmip(**new_kw)
    with pytest.warns(DeprecatedNameWarning) as record:
        old = _dcmip(**old_kw)
    named = {str(w.message).split('`')[1] for w in record}
    assert named == {'cluster_feat_source', 'mip_update_source',
                     'feat_source'}
    for model in (new, old):
        assert model.mip_update_encoder == 'student'
        assert model.cluster_encoder == 'student'
        assert model.instance_memory.encoder == 'student'
        assert model.test_cfg == dict(encoder='student')
        assert model.pseudo_label_banks == ('student', )
    with pytest.warns(DeprecatedNameWarning, match='mip_update_source'):
        assert old.mip_update_source == 'student'
    new_losses, new_mip = _train_step(new)
    old_losses, old_mip = _train_step(old)
    for key in new_losses:
        torch.testing.assert_close(old_losses[key], new_losses[key],
                                   rtol=0, atol=0)
    torch.testing.assert_close(old_mip, new_mip, rtol=0, atol=0)


def test_dcmip_both_names_with_another_value_is_an_error():
    with pytest.raises(TypeError, match='got both `mip_update_encoder`'):
        _dcmip(mip_update_encoder='student', mip_update_source='momentum')
    with pytest.raises(ValueError, match='mip_update_encoder must be'):
        with pytest.warns(DeprecatedNameWarning):
            _dcmip(mip_update_source='ema')


def _tiny(**changes):
    cfg = tiny_model()
    cfg.update(changes)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def test_cluster_contrast_old_config_keys():
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecatedNameWarning)
        new = _tiny(labels_from='gt', cluster_encoder='student',
                    memory=dict(type='ClusterMemory', old_weight=0.1,
                                encoder='student'),
                    test_cfg=dict(encoder='student'))
    with pytest.warns(DeprecatedNameWarning):
        old = _tiny(label_source='gt', cluster_feat_source='student',
                    memory=dict(type='ClusterMemory', old_weight=0.1,
                                feat_source='student'),
                    test_cfg=dict(feat_source='student'))
    assert old.labels_from == new.labels_from == 'gt'
    assert old.cluster_encoder == 'student' and old.memory.encoder == \
        'student'
    assert old.test_cfg == new.test_cfg == dict(encoder='student')
    for k, v in new.state_dict().items():
        torch.testing.assert_close(old.state_dict()[k], v, rtol=0, atol=0)
    new.eval()
    old.eval()
    x = torch.randn(2, 3, 32, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        torch.stack([s.pred_feature for s in old.predict(x)]),
        torch.stack([s.pred_feature for s in new.predict(x)]),
        rtol=0, atol=0)
    # the old attributes read the new ones
    with pytest.warns(DeprecatedNameWarning):
        assert old.label_source == 'gt'
    with pytest.warns(DeprecatedNameWarning):
        assert old.cluster_feat_source == 'student'
    with pytest.warns(DeprecatedNameWarning):
        assert old.feat_sources == old.encoder_names == ('student', )
    with pytest.warns(DeprecatedNameWarning):
        assert old.memory.feat_source == 'student'
    with pytest.warns(DeprecatedNameWarning):
        assert old.get_encoder(source='student') is old.encoder


def test_ice_config_with_old_cfg_options():
    """``--cfg-options`` of the old keys on a shipped (renamed) config."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/ice/ice_r50_market.py'))
    cfg.model.encoder = TINY_MODEL['encoder']
    cfg.merge_from_dict({
        'model.cluster_feat_source': 'student',
        'model.label_source': 'gt',
        'model.test_cfg.feat_source': 'student',
        'model.proxy_memory.feat_source': 'student'
    })
    with pytest.warns(DeprecatedNameWarning) as record:
        model = MODELS.build(cfg.model)
    assert len(record) == 4
    assert model.cluster_encoder == 'student'
    assert model.labels_from == 'gt'
    assert model.test_cfg == dict(encoder='student')
    assert model.proxy_memory.encoder == 'student'
    model.check_contract()


def test_supervised_and_theory_label_source():
    enc = TINY_MODEL['encoder']
    with pytest.warns(DeprecatedNameWarning, match='label_source'):
        sup = SupervisedReID(encoder=enc, num_classes=3, label_source='gt')
    assert sup.labels_from == 'gt'
    with pytest.warns(DeprecatedNameWarning, match='label_source'):
        theory = Theory(encoder=enc, label_source='pseudo')
    assert theory.labels_from == 'pseudo' and theory.loss_id is None
    with pytest.warns(DeprecatedNameWarning):
        with pytest.raises(ValueError, match="loss_id needs labels_from"):
            SupervisedReID(encoder=enc, num_classes=3, label_source='pseudo')


def test_pseudo_label_result_and_labeler_old_names():
    banks = _banks()
    labels = (torch.arange(24) % 4).numpy()
    new = PseudoLabelResult.from_labels(
        labels, banks, cluster_encoder='momentum', labels_from='gt')
    with pytest.warns(DeprecatedNameWarning) as record:
        old = PseudoLabelResult.from_labels(
            labels, banks, feat_source='momentum', label_source='gt')
    assert len(record) == 2
    assert old.cluster_encoder == 'momentum' and old.labels_from == 'gt'
    torch.testing.assert_close(old.centroids, new.centroids, rtol=0, atol=0)
    with pytest.warns(DeprecatedNameWarning):
        assert old.feat_source == 'momentum'
    with pytest.warns(DeprecatedNameWarning):
        assert old.label_source == 'gt'
    with pytest.warns(DeprecatedNameWarning):
        direct = PseudoLabelResult(
            labels=new.labels, num_clusters=4, num_outliers=0,
            centroids=new.centroids, feat_source='momentum')
    assert direct.cluster_encoder == 'momentum'
    with pytest.warns(DeprecatedNameWarning):
        torch.testing.assert_close(new.bank(source='student'),
                                   banks['student'])

    ids = np.arange(24) % 6
    labeler = PseudoLabeler()
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecatedNameWarning)
        res_new = labeler(banks, cluster_encoder='student', true_ids=ids,
                          labels_from='gt')
    with pytest.warns(DeprecatedNameWarning):
        res_old = labeler(banks, feat_source='student', true_ids=ids,
                          label_source='gt')
    assert res_old.cluster_encoder == res_new.cluster_encoder == 'student'
    assert res_old.labels_from == res_new.labels_from == 'gt'
    assert torch.equal(res_old.labels, res_new.labels)
    torch.testing.assert_close(res_old.centroids, res_new.centroids,
                               rtol=0, atol=0)


class _IdDataset:

    def __init__(self, n=24, ids=6):
        self.pids = [i % ids for i in range(n)]
        self.camids = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.pids)

    def get_pids(self):
        return list(self.pids)

    def get_camids(self):
        return list(self.camids)


def test_sampler_label_source():
    new = PseudoIdentitySampler(_IdDataset(), seed=0, labels_from='gt')
    with pytest.warns(DeprecatedNameWarning, match='label_source'):
        old = PseudoIdentitySampler(_IdDataset(), seed=0, label_source='gt')
    assert old.labels_from == 'gt'
    new.set_epoch(1)
    old.set_epoch(1)
    assert list(old) == list(new)


def test_get_model_feat_source():
    from mmreid_usl.apis.model_zoo import get_model
    model = _tiny()
    model.cfg = Config(dict(default_scope='mmreid_usl'))
    with pytest.warns(DeprecatedNameWarning, match='`feat_source`'):
        out, checkpoint = get_model(model, feat_source='student')
    assert out is model and checkpoint is None
    assert model.test_cfg['encoder'] == 'student'
