# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The Theory / GDS configs default to Theory's official code
(lsongx/DomainAdaptiveReID) except where the GDS supplement states a value
(configs/gds/README.md, "Theory's code, the GDS supplement and our
defaults")."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid_usl.registry import MODELS, TASK_UTILS
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=True)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
GDS = osp.join(REPO, 'configs', 'gds')
ADAPT = sorted(
    p for p in glob.glob(osp.join(GDS, '*.py'))
    if osp.basename(p).startswith(('theory', 'gds')))
STAGE1 = sorted(glob.glob(osp.join(GDS, 'source-pretrain_*.py')) +
                glob.glob(osp.join(GDS, 'supervised-*.py')))


def _ids(paths):
    return [osp.basename(p) for p in paths]


def test_the_lists_are_complete():
    assert ADAPT and STAGE1
    assert len(ADAPT) + len(STAGE1) == len(glob.glob(osp.join(GDS, '*.py')))


@pytest.mark.parametrize('path', ADAPT, ids=_ids(ADAPT))
def test_adaptation_defaults_are_theorys_code(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    # the semi triplet (use_semi=True), margin 0.5, on pool5 + embedding
    assert model.loss_triplet.type == 'TripletLoss'
    assert model.loss_triplet.mining == 'semi'
    assert model.loss_triplet.margin == 0.5
    assert tuple(model.triplet_feats) == ('pooled', 'embedding')
    # blocks of K: read from the batch, or equal to the sampler's K
    sampler = cfg.train_dataloader.sampler
    assert model.loss_triplet.get('num_instances') in (
        None, sampler.num_instances)
    # FC(no bias)-BN-ReLU embedding head, the stage-1 head
    assert model.encoder.neck.type == 'FCBNNeck'
    # the epoch: #clusters x K, outliers excluded, drop_last
    assert sampler.samples_per_epoch == 'clusters'
    assert sampler.camera_mode == 'ignore'
    assert cfg.train_dataloader.drop_last is True
    # Theory's source term (raw pool5, float16)
    distance = cfg.default_hooks.pseudo_label.labeler.distance
    assert distance.source_feature == 'raw_fp16'
    assert TASK_UTILS.build(distance).needs_raw_features
    # Theory's dense float16 re-ranking, except for MSMT17 targets (memory)
    assert distance.jaccard == ('sparse' if path.endswith('2msmt17.py')
                                else 'theory_fp16')
    # Theory's evaluation: raw pool5, squared Euclidean
    assert model.eval_feat == 'pooled'
    assert model.test_cfg.normalize is False
    # no weight decay, no gradient clipping (Theory's SGD; GDS's Adam)
    optim = cfg.optim_wrapper
    assert optim.optimizer.get('weight_decay', 0) == 0
    assert optim.get('clip_grad') is None
    if 'theory-sgd' in path:
        assert optim.optimizer.type == 'SGD'
        assert optim.optimizer.momentum == 0.9
        assert optim.optimizer.lr == 6e-5
    else:  # the GDS supplement: Adam, constant lr
        assert optim.optimizer.type == 'Adam'
        assert not cfg.get('param_scheduler')
        if '_r50_' in path:
            assert optim.optimizer.lr == 6e-5


@pytest.mark.parametrize('path', STAGE1, ids=_ids(STAGE1))
def test_stage1_defaults(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    assert model.encoder.neck.type == 'FCBNNeck'
    assert model.id_dropout == 0.1 and model.classifier_bias is True
    assert model.loss_triplet.mining == 'batch_hard'
    assert model.loss_triplet.margin == 0.5
    assert tuple(model.triplet_feats) == ('pooled', )
    # GDS supplement: label smoothing 0.1, Adam 3e-4, wd 5e-4
    assert model.loss_id.label_smooth_val == 0.1
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    assert cfg.optim_wrapper.optimizer.lr == 3e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 5e-4
    # Theory: x3 lr for the layers that are not ImageNet-pretrained
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys['encoder.neck'].lr_mult == 3.0
    assert keys['classifier'].lr_mult == 3.0
    assert model.test_cfg.normalize is False


def test_stage1_lr_multiplier_reaches_the_head():
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(GDS, 'source-pretrain_r50_market.py'))
    cfg.model.encoder.backbone.init_cfg = None
    cfg.model.encoder.backbone.depth = 18
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            lrs[id(p)] = group['lr']
    named = dict(model.named_parameters())
    assert lrs[id(named['encoder.neck.fc.weight'])] == pytest.approx(9e-4)
    assert lrs[id(named['classifier.bias'])] == pytest.approx(9e-4)
    assert lrs[id(named['encoder.backbone.conv1.weight'])] == \
        pytest.approx(3e-4)


def test_one_pass_switch_and_batch_hard_switch():
    """The GDS-wording epoch and batch-hard mining are one option each."""
    cfg = Config.fromfile(osp.join(GDS, 'gds-h_r50_duke2market.py'))
    cfg.merge_from_dict({
        'train_dataloader.sampler.samples_per_epoch': 'dataset',
        'model.loss_triplet.mining': 'batch_hard',
        'model.test_cfg.normalize': True,
        'default_hooks.pseudo_label.labeler.distance.source_feature':
        'normalized',
        'default_hooks.pseudo_label.labeler.distance.jaccard': 'sparse'
    })
    cfg.model.encoder.backbone.init_cfg = None
    cfg.model.encoder.backbone.depth = 18
    model = MODELS.build(cfg.model)
    assert model.loss_triplet.mining == 'batch_hard'
    assert not TASK_UTILS.build(
        cfg.default_hooks.pseudo_label.labeler.distance).needs_raw_features
