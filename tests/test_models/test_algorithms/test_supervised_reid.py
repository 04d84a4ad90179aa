# Copyright (c) mmreid_usl contributors. All rights reserved.
"""SupervisedReID / Theory: losses, and the stage-1 -> stage-2 hand-over."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmreid_usl.engine.hooks import PseudoLabelHook
from mmreid_usl.models import SupervisedReID, Theory
from mmreid_usl.structures import ReIDDataSample
from mmreid_usl.utils import register_all_modules

from tiny_config import TINY_PIPELINE, tiny_model

register_all_modules(init_default_scope=False)
ENCODER = tiny_model()['encoder']


def _batch(pids, h=32, w=16):
    samples = []
    for i, pid in enumerate(pids):
        s = ReIDDataSample(metainfo=dict(sample_idx=i))
        s.set_gt_label(pid)
        samples.append(s)
    return torch.randn(len(pids), 3, h, w), samples


def test_supervised_losses_and_backward():
    model = SupervisedReID(
        encoder=ENCODER,
        num_classes=4,
        triplet_feats=('pooled', 'embedding'),
        loss_gds=dict(type='GDSLoss'))
    inputs, samples = _batch([0, 0, 1, 1, 2, 2, 3, 3])
    losses = model(inputs, samples, mode='loss')
    assert {'loss_id', 'loss_triplet_pooled', 'loss_triplet_embedding',
            'loss_gds', 'loss_gds_h', 'acc_id', 'gds_mean_pos'} <= set(losses)
    total, log_vars = model.parse_losses(losses)
    total.backward()
    assert model.classifier.weight.grad is not None
    assert model.encoder.backbone.conv1.weight.grad.abs().sum() > 0
    pooled, emb = model.forward_two(inputs)
    assert pooled.shape == emb.shape == (8, 64)
    assert 'acc_id' in log_vars and 'gds_mean_pos' in log_vars
    assert float(total) == pytest.approx(
        sum(float(v) for k, v in losses.items() if 'loss' in k), rel=1e-5)


def test_label_smoothing_value():
    model = SupervisedReID(encoder=ENCODER, num_classes=5, loss_triplet=None)
    logits = torch.randn(6, 5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    ref = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
    assert float(model.loss_id(logits, y)) == pytest.approx(
        float(ref), rel=1e-6)


def test_eval_feat_levels():
    inputs, samples = _batch([0, 1])
    pooled_model = Theory(encoder=ENCODER).eval()
    pooled_model.encoder.neck.bn.running_mean.fill_(0.5)  # BN is not id
    emb_model = SupervisedReID(encoder=ENCODER, num_classes=2).eval()
    emb_model.load_state_dict(pooled_model.state_dict(), strict=False)
    with torch.no_grad():
        p = pooled_model.extract_feat(inputs)
        e = emb_model.extract_feat(inputs)
        p2, e2 = pooled_model.forward_two(inputs)
    torch.testing.assert_close(p, p2)
    torch.testing.assert_close(e, e2)
    assert not torch.allclose(p, e)
    assert (p >= 0).all()  # after ReLU + average pooling


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match='num_classes'):
        SupervisedReID(encoder=ENCODER)
    with pytest.raises(ValueError, match="labels_from='gt'"):
        SupervisedReID(encoder=ENCODER, num_classes=3, labels_from='pseudo')
    with pytest.raises(ValueError, match='triplet_feats'):
        Theory(encoder=ENCODER, triplet_feats=('pool5', ))
    model = SupervisedReID(encoder=ENCODER, num_classes=3)
    inputs, samples = _batch([0, 0, 5, 5])
    with pytest.raises(RuntimeError, match='num_classes=3'):
        model(inputs, samples, mode='loss')
    theory = Theory(encoder=ENCODER)
    assert theory.classifier is None and theory.labels_from == 'pseudo'
    with pytest.raises(RuntimeError, match='No pseudo-labels'):
        theory(inputs, samples, mode='loss')


# ----------------------------------------------------------------------
# stage 1 (source, true ids) -> stage 2 (target, clustering) with a Runner
SOURCE_CAMS, TARGET_CAMS = [1, 2], [3, 4]


def _data(root, split, cams):
    return dict(
        type='ReIDFolderDataset',
        data_root=root,
        split=split,
        cameras=cams,
        pipeline=TINY_PIPELINE)


def _loader(dataset, batch_size=32, sampler=None):
    return dict(
        batch_size=batch_size,
        num_workers=0,
        sampler=sampler
        or dict(type='DefaultSampler', shuffle=False, round_up=False),
        collate_fn=dict(type='default_collate'),
        dataset=dataset)


def _common(work_dir, max_epochs):
    return dict(
        default_scope='mmreid_usl',
        work_dir=work_dir,
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        env_cfg=dict(cudnn_benchmark=False),
        log_level='WARNING',
        randomness=dict(seed=0))


def stage1_cfg(root, work_dir, num_classes, gds=True):
    sampler = dict(
        type='PseudoIdentitySampler',
        num_instances=4,
        samples_per_epoch=16,
        camera_mode='ignore',
        labels_from='gt')
    cfg = _common(work_dir, max_epochs=1)
    cfg.update(
        model=dict(
            type='SupervisedReID',
            encoder=copy.deepcopy(ENCODER),
            num_classes=num_classes,
            loss_gds=dict(type='GDSLoss') if gds else None),
        train_dataloader=_loader(
            _data(root, 'train', SOURCE_CAMS), batch_size=8, sampler=sampler),
        optim_wrapper=dict(
            optimizer=dict(type='Adam', lr=3e-4, weight_decay=5e-4)))
    return Config(cfg)


def stage2_cfg(root, work_dir, load_from, max_epochs=2):
    cfg = _common(work_dir, max_epochs=max_epochs)
    cfg['default_hooks']['pseudo_label'] = dict(
        type='PseudoLabelHook',
        interval=1,
        labeler=dict(
            type='PseudoLabeler',
            distance=dict(
                type='SourceAwareJaccardDistance', k1=6, k2=2,
                lambda_source=0.1),
            clusterer=dict(type='RhoDBSCANClusterer', rho=0.02,
                           min_samples=2)),
        reference_dataloader=_loader(_data(root, 'train', SOURCE_CAMS)))
    cfg.update(
        model=dict(
            type='Theory',
            encoder=copy.deepcopy(ENCODER),
            loss_gds=dict(type='GDSLoss')),
        train_dataloader=_loader(
            _data(root, 'train', TARGET_CAMS),
            batch_size=8,
            sampler=dict(
                type='PseudoIdentitySampler',
                num_instances=4,
                samples_per_epoch=16,
                camera_mode='ignore')),
        cluster_dataloader=_loader(_data(root, 'train', TARGET_CAMS)),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=6e-5, momentum=0.9),
            clip_grad=dict(type='value', clip_value=1.0)),
        load_from=load_from)
    return Config(cfg)


class _Snapshot(Hook):
    """Record the encoder weights when training starts (after loading)."""

    def before_train(self, runner):
        self.state = {
            k: v.clone()
            for k, v in runner.model.encoder.state_dict().items()
        }


def test_stage1_to_stage2_hand_over(tiny_reid_root, tmp_path):
    from mmreid_usl.datasets import ReIDFolderDataset
    source = ReIDFolderDataset(
        tiny_reid_root, split='train', cameras=SOURCE_CAMS)
    # stage 1: true ids, the sampler reads them from the dataset
    run1 = Runner.from_cfg(
        stage1_cfg(tiny_reid_root, str(tmp_path / 's1'), source.num_pids))
    run1.train()
    sampler = run1.train_dataloader.sampler
    assert sampler.num_clusters == source.num_pids
    assert run1.iter == 2
    ckpt1 = osp.join(str(tmp_path / 's1'), 'epoch_1.pth')
    state1 = torch.load(ckpt1, weights_only=True)['state_dict']
    assert 'classifier.weight' in state1
    assert int(state1['loss_gds.num_updates']) == 2

    # stage 2: load_from the stage-1 checkpoint (classifier dropped)
    run2 = Runner.from_cfg(
        stage2_cfg(tiny_reid_root, str(tmp_path / 's2'), ckpt1))
    snap = _Snapshot()
    run2.register_hook(snap)
    run2.train()
    for key, value in snap.state.items():
        torch.testing.assert_close(value, state1[f'encoder.{key}'])
    assert run2.model.classifier is None
    hook = next(h for h in run2.hooks if isinstance(h, PseudoLabelHook))
    assert [h['epoch'] for h in hook.history] == [0, 1]
    assert hook.history[0]['num_clusters'] >= 2
    eps = hook.labeler.clusterer.eps
    assert eps is not None
    # GDS statistics continue from stage 1 (2 + 2 x 2 updates)
    assert int(run2.model.loss_gds.num_updates) == 6
    ckpt2 = torch.load(
        osp.join(str(tmp_path / 's2'), 'epoch_2.pth'), weights_only=True)
    assert ckpt2['pseudo_labeler']['clusterer']['eps'] == eps

    # resume: eps and the GDS statistics come back from the checkpoint
    cfg = stage2_cfg(
        tiny_reid_root, str(tmp_path / 's2'), None, max_epochs=3)
    cfg.resume = True
    run3 = Runner.from_cfg(cfg)
    run3.train()
    hook3 = next(h for h in run3.hooks if isinstance(h, PseudoLabelHook))
    assert hook3.labeler.clusterer.eps == eps
    assert [h['epoch'] for h in hook3.history] == [2]
    assert int(run3.model.loss_gds.num_updates) == 8


# ----------------------------------------------------------------------
# Theory's head and the stage-1 -> stage-3 hand-over of the shipped configs
REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def _config_model(path, depth=18):
    """The model of a shipped config, with a small ResNet of the same
    structure (depth 18) and no ImageNet download."""
    from mmreid_usl.registry import MODELS
    cfg = Config.fromfile(osp.join(REPO, path))
    cfg.model.encoder.backbone.init_cfg = None
    cfg.model.encoder.backbone.depth = depth
    return MODELS.build(cfg.model)


def test_stage1_config_has_theorys_head_and_classifier():
    model = _config_model('configs/gds/source-pretrain_r50_duke.py')
    head = model.encoder.neck
    # pool5 (512-d at depth 18, 2048 at 50) -> FC without bias -> BN -> ReLU
    assert type(head).__name__ == 'FCBNNeck'
    assert tuple(head.fc.weight.shape) == (512, 512) and head.fc.bias is None
    assert head.bn.bias.requires_grad
    assert isinstance(head.relu, torch.nn.ReLU)
    # dropout 0.1, then a classifier WITH bias over the 702 Duke ids
    assert isinstance(model.id_dropout, torch.nn.Dropout)
    assert model.id_dropout.p == 0.1
    assert tuple(model.classifier.weight.shape) == (702, 512)
    assert model.classifier.bias is not None
    assert torch.equal(model.classifier.bias, torch.zeros(702))
    assert (model.loss_triplet.margin, model.loss_triplet.mining) == (
        0.5, 'batch_hard')
    inputs, samples = _batch([0, 0, 0, 0, 1, 1, 1, 1], h=64, w=32)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_id', 'acc_id', 'loss_triplet_pooled'}
    pooled, emb = model.forward_two(inputs)
    assert pooled.shape == emb.shape == (8, 512)
    assert (emb >= 0).all()
    # the stage-3 model: the same head, no classifier, Theory's semi loss
    theory = _config_model('configs/gds/theory_r50_duke2market.py')
    assert type(theory.encoder.neck).__name__ == 'FCBNNeck'
    assert theory.classifier is None and theory.id_dropout is None
    assert (theory.loss_triplet.margin, theory.loss_triplet.mining) == (
        0.5, 'semi')
    assert theory.triplet_feats == ('pooled', 'embedding')


@pytest.mark.parametrize('stage3', [
    'configs/gds/theory_r50_duke2market.py',
    'configs/gds/gds-h_r50_duke2market.py',
    'configs/gds/theory-sgd_r50_duke2market.py'
])
def test_stage1_checkpoint_loads_into_stage3(tmp_path, stage3):
    from mmengine.runner.checkpoint import load_checkpoint
    stage1 = _config_model('configs/gds/source-pretrain_r50_duke.py')
    # move every stage-1 tensor away from its initial value
    with torch.no_grad():
        for tensor in stage1.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor))
    state1 = stage1.state_dict()
    ckpt = str(tmp_path / 'epoch_150.pth')
    torch.save({'state_dict': state1}, ckpt)
    model = _config_model(stage3)
    state3 = model.state_dict()
    # the encoder (backbone + FC-BN-ReLU head) loads STRICTLY
    enc1 = {k[len('encoder.'):]: v for k, v in state1.items()
            if k.startswith('encoder.')}
    assert any(k.startswith('neck.fc.') for k in enc1)
    result = model.encoder.load_state_dict(enc1, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # what `load_from` does (non-strict): only the classifier is left out
    model = _config_model(stage3)
    load_checkpoint(model, ckpt, map_location='cpu', strict=False)
    assert set(state1) - set(state3) == {'classifier.weight',
                                         'classifier.bias'}
    only3 = set(state3) - set(state1)
    assert all(k.startswith('loss_gds.') for k in only3), only3
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, state1[f'encoder.{key}'])


def test_test_features_raw_or_normalised():
    inputs, samples = _batch([0, 1, 2])
    raw_model = Theory(encoder=ENCODER,
                       test_cfg=dict(normalize=False)).eval()
    norm_model = Theory(encoder=ENCODER).eval()
    norm_model.load_state_dict(raw_model.state_dict())
    raw = torch.stack([s.pred_feature for s in raw_model.predict(
        inputs, copy.deepcopy(samples))])
    norm = torch.stack([s.pred_feature for s in norm_model.predict(
        inputs, copy.deepcopy(samples))])
    with torch.no_grad():
        pool5 = raw_model.extract_feat(inputs)
    # Theory's evaluation feature: raw pool5 (ReIDMetric then ranks by the
    # squared Euclidean distance); the default: L2-normalised
    torch.testing.assert_close(raw, pool5)
    torch.testing.assert_close(norm,
                               torch.nn.functional.normalize(pool5, dim=1))
    assert not torch.allclose(raw.norm(dim=1), torch.ones(3))


def test_forward_two_honours_bn_running_stats():
    """``bn_running_stats='first_group'``: only the first BN group moves the
    running statistics of the training forward, as in the student forward
    of the other algorithms; the features do not change."""
    inputs, _ = _batch([0, 0, 1, 1, 2, 2, 3, 3])
    models = {
        mode: SupervisedReID(encoder=ENCODER, num_classes=4, bn_group_size=4,
                             bn_running_stats=mode)
        for mode in ('every_group', 'first_group')
    }
    models['first_group'].load_state_dict(models['every_group'].state_dict())
    first_only = copy.deepcopy(models['first_group'])
    feats = {mode: model.forward_two(inputs)
             for mode, model in models.items()}
    first_only.forward_two(inputs[:4])  # one group: the first one alone
    for a, b in zip(feats['every_group'], feats['first_group']):
        torch.testing.assert_close(a, b)
    for name, bn in models['first_group'].encoder.named_modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            ref = first_only.encoder.get_submodule(name)
            torch.testing.assert_close(bn.running_mean, ref.running_mean)
            torch.testing.assert_close(bn.running_var, ref.running_var)
            assert bn.num_batches_tracked == 1
    every_bn = models['every_group'].encoder.neck.bn
    assert every_bn.num_batches_tracked == 2
    assert not torch.allclose(every_bn.running_mean,
                              models['first_group'].encoder.neck.bn
                              .running_mean)
