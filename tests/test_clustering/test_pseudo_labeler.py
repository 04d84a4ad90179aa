# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.clustering import (BaseClusterer, BaseDistance,
                                   DistanceMatrix, JaccardDistance,
                                   PseudoLabeler)
from mmreid_usl.registry import TASK_UTILS
from mmreid_usl.utils import register_all_modules

register_all_modules(init_default_scope=False)


def _blobs(num_ids=6, per_id=6, dim=16, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(num_ids, dim, generator=g), dim=1)
    feats = centres.repeat_interleave(per_id, 0)
    feats = F.normalize(
        feats + noise * torch.randn(feats.shape, generator=g), dim=1)
    return feats, torch.arange(num_ids).repeat_interleave(per_id)


def test_labels_the_identities_of_separated_blobs():
    feats, ids = _blobs()
    labeler = PseudoLabeler(
        distance=dict(type='JaccardDistance', k1=6, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=3))
    result = labeler(
        dict(student=feats), camids=torch.zeros(len(ids)), epoch=3)
    assert result.num_clusters == 6 and result.num_outliers == 0
    # one cluster per identity (up to renumbering)
    for i in range(6):
        assert len(set(result.labels[ids == i].tolist())) == 1
    assert result.epoch == 3 and result.cluster_encoder == 'student'
    assert 'cluster_time' in labeler.last_timing


class _RecordingJaccard(JaccardDistance):
    """Records the radius of every call and the matrix it returned."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.radii, self.results = [], []

    def compute(self, features, context, max_distance):
        self.radii.append(max_distance)
        self.results.append(super().compute(features, context, max_distance))
        return self.results[-1]


def test_eps_pruning_is_explicit_and_keeps_a_users_max_distance():
    distance = _RecordingJaccard(k1=10, k2=3)
    labeler = PseudoLabeler(
        distance=distance,
        clusterer=dict(type='DBSCANClusterer', eps=0.5, min_samples=2),
        min_clusters=0)
    labeler(torch.randn(20, 4))
    # the radius is passed to the call, the distance is not modified
    assert 0.5 < distance.radii[-1] <= 0.502
    assert distance.results[-1].max_distance == distance.radii[-1]
    assert (distance.results[-1].matrix.data < distance.radii[-1]).all()
    assert distance.max_distance == 1.0
    # follows an eps changed later (e.g. computed from the data)
    labeler.clusterer.eps = 0.3
    labeler(torch.randn(20, 4))
    assert 0.3 < distance.radii[-1] <= 0.302
    assert distance.max_distance == 1.0
    explicit = PseudoLabeler(
        distance=_RecordingJaccard(max_distance=0.8),
        clusterer=dict(type='DBSCANClusterer', eps=0.5),
        min_clusters=0)
    explicit(torch.randn(20, 4))
    assert explicit.distance.radii == [0.8]  # the user's choice
    off = PseudoLabeler(
        distance=_RecordingJaccard(),
        clusterer=dict(type='DBSCANClusterer', eps=0.5),
        prune_by_eps=False,
        min_clusters=0)
    off(torch.randn(20, 4))
    assert off.pruning_radius() is None and off.distance.radii == [1.0]


@pytest.mark.parametrize('eps,min_samples,found', [(0.99, 3, 1),
                                                   (0.6, 1000, 0)])
def test_degenerate_clusterings_stop_naming_the_parameters(
        eps, min_samples, found):
    feats, _ = _blobs(noise=0.5)  # k-reciprocal sets span several ids
    labeler = PseudoLabeler(
        distance=dict(type='JaccardDistance', k1=20, k2=6),
        clusterer=dict(
            type='DBSCANClusterer', eps=eps, min_samples=min_samples))
    with pytest.raises(
            RuntimeError,
            match=rf'eps={eps}, min_samples={min_samples}.*found {found} '):
        labeler(feats)


def test_degenerate_clustering_can_be_skipped_explicitly():
    feats, _ = _blobs(noise=0.5)
    labeler = PseudoLabeler(
        distance=dict(type='JaccardDistance', k1=20, k2=6),
        clusterer=dict(type='DBSCANClusterer', eps=0.99, min_samples=3),
        on_degenerate='skip')
    with pytest.warns(UserWarning, match='1 cluster'):
        result = labeler(feats)
    assert result.num_clusters == 0 and result.num_outliers == len(feats)
    with pytest.raises(ValueError, match='on_degenerate'):
        PseudoLabeler(on_degenerate='ignore')


def test_ground_truth_labels_skip_the_clustering():
    feats, ids = _blobs()
    labeler = PseudoLabeler(
        distance=None,
        clusterer=dict(type='DBSCANClusterer', eps=1e-9, min_samples=99))
    result = labeler(
        feats, true_ids=(ids * 7 + 3).numpy(), labels_from='gt')
    assert result.labels_from == 'gt'
    np.testing.assert_array_equal(result.labels.numpy(), ids.numpy())
    with pytest.raises(ValueError, match='true ids'):
        labeler(feats, labels_from='gt')


class _RefDistance(BaseDistance):
    """Records the reference bank the labeler hands over."""

    max_distance = 0.5

    def __init__(self):
        self.seen = None

    def compute(self, features, context, max_distance):
        self.seen = context.reference_features
        return DistanceMatrix(
            1 - (features @ features.t()).clamp(0, 1).numpy())


class _StatefulDBSCAN(BaseClusterer):

    def __init__(self):
        self.eps = 0.3
        self.min_samples = 2

    def cluster(self, distance, context):
        from sklearn.cluster import DBSCAN
        return DBSCAN(eps=self.eps, min_samples=2,
                      metric='precomputed').fit_predict(distance.matrix)

    def state_dict(self):
        return dict(eps=self.eps)

    def load_state_dict(self, state):
        self.eps = state['eps']


def test_reference_bank_and_clusterer_state():
    feats, _ = _blobs()
    distance, clusterer = _RefDistance(), _StatefulDBSCAN()
    labeler = PseudoLabeler(distance=distance, clusterer=clusterer)
    ref = torch.randn(3, 16)
    result = labeler(feats, reference_features=ref)
    assert distance.seen is ref
    # an input of the labelling, not part of what the model receives
    assert not hasattr(result, 'reference_features')
    clusterer.eps = 0.42
    state = labeler.state_dict()
    assert state == dict(clusterer=dict(eps=0.42))
    other = PseudoLabeler(distance=_RefDistance(), clusterer=_StatefulDBSCAN())
    other.load_state_dict(state)
    assert other.clusterer.eps == 0.42
    plain = TASK_UTILS.build(dict(type='PseudoLabeler'))
    assert plain.state_dict() == {}
    with pytest.raises(KeyError, match='cannot load'):
        plain.load_state_dict(state)


def test_oracle_labels_with_merge_and_split_noise():
    from mmreid_usl.clustering import OracleClusterer
    ids = np.repeat(np.arange(20) * 3 + 100, 4)  # 20 ids x 4 images
    clean = OracleClusterer()(true_ids=ids)
    np.testing.assert_array_equal(clean, np.repeat(np.arange(20), 4))
    merged = OracleClusterer(merge_ratio=0.2, seed=1)(true_ids=ids)
    assert len(np.unique(merged)) == 18  # 2 pairs merged
    sizes = np.bincount(merged)
    assert sorted(sizes)[-2:] == [8, 8]
    split = OracleClusterer(split_ratio=0.2, seed=1)(true_ids=ids)
    assert len(np.unique(split)) == 24  # 4 ids split in two halves
    assert sorted(np.bincount(split))[:8] == [2] * 8
    # every split cluster stays inside one true id
    for c in np.unique(split):
        assert len(np.unique(ids[split == c])) == 1
    # a new draw every call, reproducible from the state
    oracle = OracleClusterer(merge_ratio=0.5, seed=3)
    first = oracle(true_ids=ids)
    state = oracle.state_dict()
    second = oracle(true_ids=ids)
    assert not np.array_equal(first, second)
    replay = OracleClusterer(merge_ratio=0.5, seed=3)
    replay.load_state_dict(state)
    np.testing.assert_array_equal(replay(true_ids=ids), second)
    with pytest.raises(ValueError, match='merge_ratio'):
        OracleClusterer(merge_ratio=1.5)
    with pytest.raises(ValueError, match='true ids'):
        OracleClusterer()(torch.zeros(3, 2))


def test_oracle_through_the_labeler_is_marked():
    feats, ids = _blobs()
    labeler = PseudoLabeler(
        distance=None, clusterer=dict(type='OracleClusterer', split_ratio=0.5))
    result = labeler(feats, true_ids=ids.numpy())
    assert result.labels_from == 'oracle'
    assert result.num_clusters == 9  # 3 of 6 ids split
    assert 'OracleClusterer' in labeler.describe_clusterer()


def test_data_fraction_labels_a_seeded_subset():
    feats, ids = _blobs(num_ids=10, per_id=10)
    labeler = PseudoLabeler(
        distance=dict(type='JaccardDistance', k1=6, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=3),
        fraction=0.5,
        seed=7)
    a = labeler(feats, epoch=2)
    labelled = a.labels >= 0
    assert 0 < int(labelled.sum()) <= 50
    # the same epoch draws the same subset (resume), another epoch another
    b = labeler(feats, epoch=2)
    torch.testing.assert_close(a.labels, b.labels)
    c = labeler(feats, epoch=3)
    assert not torch.equal(a.labels >= 0, c.labels >= 0)
    # clusters are still the identities of the subset
    for label in torch.unique(a.labels[labelled]):
        assert len(torch.unique(ids[a.labels == label])) == 1
    with pytest.raises(ValueError, match='fraction'):
        PseudoLabeler(fraction=0.0)
