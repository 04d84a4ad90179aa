# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The labelling protocol: distance(features, context, radius) ->
DistanceMatrix, clusterer(distance, context) -> labels."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mmreid_usl.clustering import (BaseClusterer, BaseDistance,
                                   DBSCANClusterer, DistanceMatrix,
                                   JaccardDistance, LabelingContext,
                                   OracleClusterer, PseudoLabeler)
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


class _SameCameraPenalty(BaseDistance):
    """The example of the protocol's docstring: Jaccard plus a penalty on
    the pairs of one camera (camera ids read from the context)."""

    def __init__(self, penalty=0.1, **jaccard):
        self.penalty = penalty
        self.jaccard = JaccardDistance(**jaccard)
        self.seen = []

    def compute(self, features, context, max_distance):
        self.seen.append((context.camids, context.epoch, max_distance))
        d = self.jaccard(features, context, max_distance).matrix
        cam = context.camids.cpu().numpy()
        rows = np.repeat(np.arange(d.shape[0]), np.diff(d.indptr))
        same = (cam[rows] == cam[d.indices]) & (rows != d.indices)
        d.data[same] += self.penalty
        return DistanceMatrix(d, max_distance=max_distance)


def test_a_custom_distance_receives_the_camera_ids():
    feats, ids = _blobs()
    camids = torch.arange(len(ids)) % 3
    labeler = PseudoLabeler(
        distance=_SameCameraPenalty(penalty=0.05, k1=6, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=3))
    result = labeler(feats, camids=camids, epoch=4)
    seen_camids, epoch, radius = labeler.distance.seen[-1]
    assert torch.equal(seen_camids, camids) and epoch == 4
    assert radius == pytest.approx(0.601)  # DBSCAN's eps + 1e-3, passed
    assert labeler.distance.jaccard.max_distance == 1.0  # not modified
    assert result.num_clusters == 6
    # the data fraction hands the distance the camera ids of its subset
    half = PseudoLabeler(
        distance=_SameCameraPenalty(k1=6, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=3),
        fraction=0.5,
        min_clusters=0)
    half(feats, camids=camids)
    sub = half._subset(len(feats), 0)
    assert torch.equal(half.distance.seen[-1][0], camids[sub])


def test_the_pruning_radius_is_passed_not_set():
    feats, _ = _blobs(noise=0.5)
    distance = JaccardDistance(k1=6, k2=3)
    clusterer = DBSCANClusterer(eps=0.4, min_samples=3)
    full = distance(feats)
    pruned = distance(feats, LabelingContext(), clusterer.pruning_radius())
    assert distance.max_distance == 1.0
    assert (full.max_distance, pruned.max_distance) == (1.0, 0.401)
    assert pruned.matrix.nnz < full.matrix.nnz
    assert (pruned.matrix.data < 0.401).all()
    ctx = LabelingContext(features=feats)
    np.testing.assert_array_equal(
        clusterer(full, ctx), clusterer(pruned, ctx))
    # a max_distance set below 1 is the user's choice and wins
    assert JaccardDistance(max_distance=0.8).resolve_radius(0.401) == 0.8
    assert JaccardDistance().resolve_radius(None) == 1.0
    # clusterers without a radius, or an eps not known yet
    assert OracleClusterer().pruning_radius() is None
    assert TASK_UTILS.build(
        dict(type='RhoDBSCANClusterer')).pruning_radius() is None


def test_distance_matrix_replaces_attributes_on_scipy_matrices():
    feats, _ = _blobs()
    dist = JaccardDistance(k1=6, k2=3)(feats)
    assert isinstance(dist, DistanceMatrix) and dist.is_sparse
    assert isinstance(dist.matrix, sp.csr_matrix)
    assert not hasattr(dist.matrix, 'unstored_distance')
    assert dist.unstored_distance.lower_bound() == 1.0
    # the older use of the bare matrix keeps working
    assert dist.shape == (36, 36) and dist.nnz == dist.matrix.nnz
    assert (dist.tocoo().data == dist.matrix.tocoo().data).all()
    with pytest.raises(TypeError, match='sparse'):
        np.asarray(dist)
    dense = DistanceMatrix(np.eye(3))
    np.testing.assert_array_equal(np.asarray(dense), np.eye(3))


def test_older_call_forms_keep_working():
    feats, ids = _blobs()
    dist = JaccardDistance(k1=6, k2=3)(feats)
    clusterer = DBSCANClusterer(eps=0.6, min_samples=3,
                                distance=dict(type='JaccardDistance', k1=6,
                                              k2=3))
    expect = clusterer(dist, LabelingContext())
    for labels in (clusterer(dist=dist), clusterer(dist=dist.matrix),
                   clusterer(feats, dist.matrix), clusterer(feats)):
        np.testing.assert_array_equal(labels, expect)
    ids = ids.numpy()
    np.testing.assert_array_equal(
        OracleClusterer()(true_ids=ids),
        OracleClusterer()(None, LabelingContext(true_ids=ids)))
    with pytest.raises(TypeError, match='no field'):
        JaccardDistance()(feats, camera_ids=ids)


def test_labeler_accepts_only_protocol_components():

    class _Plain:

        def __call__(self, feats, dist=None):
            return np.zeros(len(feats), dtype=np.int64)

    with pytest.raises(TypeError, match='BaseClusterer'):
        PseudoLabeler(clusterer=_Plain())
    with pytest.raises(TypeError, match='BaseDistance'):
        PseudoLabeler(distance=_Plain())


def test_context_subset_and_process_group():
    ctx = LabelingContext(
        features=torch.arange(10.).view(5, 2),
        camids=torch.tensor([0, 1, 2, 3, 4]),
        true_ids=np.array([5, 6, 7, 8, 9]),
        reference_features=torch.ones(3, 2),
        epoch=2)
    sub = ctx.subset(np.array([1, 3]))
    assert torch.equal(sub.camids, torch.tensor([1, 3]))
    np.testing.assert_array_equal(sub.true_ids, [6, 8])
    assert sub.features.shape == (2, 2) and sub.raw_features is None
    assert sub.reference_features is ctx.reference_features
    assert sub.epoch == 2
    # no group: this process labels alone
    assert (ctx.process_group, ctx.rank, ctx.world_size) == (None, 0, 1)


class _Median(BaseClusterer):
    """A clusterer on the features (no distance): two halves by norm of
    the first coordinate."""

    def cluster(self, distance, context):
        x = self.features_of(context)[:, 0]
        return (x > x.median()).long().numpy()


def test_a_clusterer_without_distance_reads_the_context_features():
    feats, _ = _blobs()
    labeler = PseudoLabeler(distance=None, clusterer=_Median())
    result = labeler(feats)
    assert result.num_clusters == 2
    with pytest.raises(ValueError, match='features'):
        _Median()(None, LabelingContext())


def test_label_then_build_result_equals_the_call():
    feats, ids = _blobs()
    labeler = PseudoLabeler(
        distance=dict(type='JaccardDistance', k1=6, k2=3),
        clusterer=dict(type='DBSCANClusterer', eps=0.6, min_samples=3))
    banks = dict(student=feats, momentum=feats.flip(1))
    camids = torch.arange(len(ids)) % 2
    output = labeler.label(LabelingContext(features=feats, camids=camids))
    assert output.labels_from == 'pseudo' and 'cluster_time' in output.timing
    built = labeler.build_result(
        torch.from_numpy(output.labels), output.labels_from, banks,
        'student', camids, 0)
    called = labeler(banks, cluster_encoder='student', camids=camids)
    assert torch.equal(built.labels, called.labels)
    assert torch.equal(built.centroids, called.centroids)
    assert torch.equal(built.centroids_of('momentum'),
                       called.centroids_of('momentum'))
