# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.clustering import PseudoLabelResult
from mmreid_usl.models import ClusterContrast
from mmreid_usl.structures import ReIDDataSample

from tiny_config import tiny_model

ENCODER = tiny_model()['encoder']
ENCODER['neck'] = dict(type='mmpretrain.GeneralizedMeanPooling', p=3.0)


def _model(**kwargs):
    return ClusterContrast(
        encoder=ENCODER,
        memory=dict(type='ClusterMemory', feat_dim=64, momentum=0.1),
        **kwargs)


def _result(n=12, d=64, num_clusters=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1)
    labels = torch.arange(n) % num_clusters
    labels[-1] = -1
    result = PseudoLabelResult.from_labels(feats, labels)
    result.extras.update(features=feats, camids=torch.zeros(n))
    return result


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
    assert set(losses) == {'loss'} and losses['loss'].requires_grad
    losses['loss'].backward()
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
        model.extract_feat(inputs, source='momentum')


def test_random_instance_memory_init_is_a_member():
    model = _model(memory_init='random')
    result = _result()
    model.set_pseudo_labels(result)
    feats, labels = result.extras['features'], result.labels
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
    with pytest.raises(ValueError, match='memory_init'):
        _model(memory_init='first')


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
