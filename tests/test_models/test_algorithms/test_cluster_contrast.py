# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import ClusterContrast
from mmreid_usl.structures import PseudoLabelResult, ReIDDataSample

from tiny_config import tiny_model

ENCODER = tiny_model()['encoder']
ENCODER['pooling'] = dict(type='mmpretrain.GeneralizedMeanPooling', p=3.0)


def _model(memory=None, **kwargs):
    return ClusterContrast(
        encoder=ENCODER,
        memory=dict(type='ClusterMemory', old_weight=0.1, **(memory or {})),
        **kwargs)


def _result(n=12, d=64, num_clusters=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1)
    labels = torch.arange(n) % num_clusters
    labels[-1] = -1
    return PseudoLabelResult.from_labels(
        labels, feats, camids=torch.zeros(n, dtype=torch.long))


def _batch(idx):
    samples = [ReIDDataSample(metainfo=dict(sample_idx=i)) for i in idx]
    return torch.randn(len(idx), 3, 32, 16), samples


def test_loss_and_memory_update():
    model = _model()
    result = _result()
    model.set_pseudo_labels(result)
    torch.testing.assert_close(model.memory.features,
                               F.normalize(result.centroids, dim=1))
    before = model.memory.features.clone()
    inputs, samples = _batch([0, 1, 2, 3, 4, 5, 6, 7])
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_cluster'}
    assert losses['loss_cluster'].requires_grad
    losses['loss_cluster'].backward()
    assert model.encoder.backbone.conv1.weight.grad is not None
    # every cluster in the batch moved, its row stays unit-norm
    assert not torch.allclose(model.memory.features, before)
    torch.testing.assert_close(model.memory.features.norm(dim=1),
                               torch.ones(3))


def test_predict_returns_normalised_features():
    model = _model().eval()
    inputs, samples = _batch([0, 1])
    out = model(inputs, samples, mode='predict')
    feats = torch.stack([s.pred_feature for s in out])
    assert feats.shape == (2, 64)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match='momentum'):
        model.extract_feat(inputs, encoder='momentum')


def test_random_instance_memory_init_is_a_member():
    model = _model(memory=dict(init_mode='random'))
    result = _result()
    model.set_pseudo_labels(result)
    feats, labels = result.bank(), result.labels
    for c in range(3):
        members = F.normalize(feats[labels == c], dim=1)
        assert (members - model.memory.features[c]).abs().sum(1).min() < 1e-6


def test_errors_name_the_problem():
    model = _model()
    inputs, samples = _batch([0, 1])
    with pytest.raises(RuntimeError, match='No pseudo-labels'):
        model(inputs, samples, mode='loss')
    model.set_pseudo_labels(_result())
    inputs, samples = _batch([11, 0])  # sample 11 is an outlier
    with pytest.raises(RuntimeError, match='outlier'):
        model(inputs, samples, mode='loss')
    with pytest.raises(ValueError, match='init_mode'):
        _model(memory=dict(init_mode='first'))
    with pytest.raises(ValueError, match='labels_from'):
        _model(labels_from='true')


def test_nan_loss_stops_before_the_step():
    model = _model()
    with pytest.raises(FloatingPointError, match='Non-finite loss.*loss=nan'):
        model.parse_losses(dict(loss=torch.tensor(float('nan'))))
    loss, _ = model.parse_losses(dict(loss=torch.tensor(1.0)))
    assert loss.item() == 1.0


def test_checkpoint_round_trip_resizes_buffers():
    src = _model()
    src.set_pseudo_labels(_result())
    dst = _model()
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst.memory.features, src.memory.features)
    torch.testing.assert_close(dst.pseudo_labels, src.pseudo_labels)


def test_contract_declares_banks_and_checks_sources():
    model = _model()
    assert model.encoder_names == ('student', )
    assert model.pseudo_label_banks == ('student', )
    model.check_contract()
    with pytest.raises(ValueError, match="'momentum' is used as a"):
        _model(memory=dict(encoder='momentum')).check_contract()
    with pytest.raises(ValueError, match="'momentum' is used"):
        _model(cluster_encoder='momentum').check_contract()


def test_ground_truth_labels_without_a_hook():
    """labels_from='gt' reads the samples' true (train-split) ids."""
    model = _model(labels_from='gt')
    samples = [
        ReIDDataSample(metainfo=dict(sample_idx=i)).set_gt_label(p)
        for i, p in [(0, 5), (1, 2)]
    ]
    torch.testing.assert_close(model.get_targets(samples),
                               torch.tensor([5, 2]))
    # a USL model without labels refuses instead of reading true ids
    with pytest.raises(RuntimeError, match='No pseudo-labels'):
        _model().get_targets(samples)


def test_bn_groups_of_the_student_forward():
    """bn_group_size=4 normalises each chunk of 4 with its own statistics,
    i.e. equals 2 separate forwards of 4 images."""
    torch.manual_seed(0)
    model = _model(bn_group_size=4).train()
    ref = _model().train()
    ref.load_state_dict(model.state_dict())
    x = torch.randn(8, 3, 32, 16)
    grouped = model.student_forward(x)
    separate = torch.cat([ref.encoder(x[:4]), ref.encoder(x[4:])])
    torch.testing.assert_close(grouped, separate)
    whole = _model().train()
    whole.load_state_dict(model.state_dict())
    assert not torch.allclose(whole.encoder(x), grouped)
    with pytest.raises(ValueError, match='multiple of the BN group size'):
        model.student_forward(torch.randn(6, 3, 32, 16))


def test_memory_update_receives_the_batch_camids(monkeypatch):
    model = _model()
    model.set_pseudo_labels(_result())
    seen = []
    monkeypatch.setattr(model.memory, 'update',
                        lambda f, t, camids=None: seen.append(camids))
    inputs, _ = _batch([0, 1, 2, 3])
    samples = [
        ReIDDataSample(metainfo=dict(sample_idx=i, camid=10 + i))
        for i in range(4)
    ]
    model(inputs, samples, mode='loss')
    assert seen[0].tolist() == [10, 11, 12, 13]
    # samples without a camid: the memory gets None
    model(*_batch([0, 1]), mode='loss')
    assert seen[1] is None
