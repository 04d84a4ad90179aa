# Copyright (c) mmreid_usl contributors. All rights reserved.
from mmreid_usl.clustering import cluster_stats


def test_cluster_stats():
    stats = cluster_stats([0, 0, 1, 1, -1], [4, 4, 5, 5, 6])
    assert stats['ari'] == 1.0 and stats['nmi'] == 1.0
    assert stats['num_outliers'] == 1
    stats = cluster_stats([0, 0, 0, 0, 0], [4, 4, 5, 5, 6])
    assert stats['ari'] == 0.0
    stats = cluster_stats([-1] * 5, [0, 0, 1, 1, 2])
    assert stats['num_clusters'] == 0 and stats['ari_clustered'] == 0.0


def _dense_pairs(labels, ids, cams):
    """Brute-force reference over all unordered pairs."""
    import itertools
    same_c = same_i = both = cross_i = cross_both = 0
    for a, b in itertools.combinations(range(len(labels)), 2):
        c = labels[a] >= 0 and labels[a] == labels[b]
        i = ids[a] == ids[b]
        x = cams[a] != cams[b]
        same_c += c
        same_i += i
        both += c and i
        cross_i += i and x
        cross_both += c and i and x
    return same_c, same_i, both, cross_i, cross_both


def test_pair_and_camera_stats_against_dense_reference():
    import numpy as np
    rng = np.random.default_rng(0)
    labels = rng.integers(-1, 6, size=60)
    ids = rng.integers(0, 8, size=60)
    cams = rng.integers(0, 3, size=60)
    stats = cluster_stats(labels, ids, cams)
    same_c, same_i, both, cross_i, cross_both = _dense_pairs(
        labels, ids, cams)
    assert np.isclose(stats['pair_precision'], both / same_c)
    assert np.isclose(stats['pair_recall'], both / same_i)
    assert np.isclose(stats['cross_camera_recall'], cross_both / cross_i)
    clusters = np.unique(labels[labels >= 0])
    single = np.mean([len(set(cams[labels == c])) == 1 for c in clusters])
    assert np.isclose(stats['single_camera_clusters'], single)


def test_camera_stats_hand_computed():
    from mmreid_usl.clustering import camera_stats
    # cluster 0 spans cameras 1 and 2, cluster 1 only camera 1; the outlier
    # (camera 3) is ignored
    stats = camera_stats([0, 0, 1, 1, -1], [1, 2, 1, 1, 3])
    assert stats['single_camera_clusters'] == 0.5
    assert camera_stats([-1, -1], [1, 2])['single_camera_clusters'] == 0.0
    # camera-pure clusters of a 2-camera identity: nothing cross-camera
    stats = cluster_stats([0, 0, 1, 1], [7, 7, 7, 7], [1, 1, 2, 2])
    assert stats['pair_precision'] == 1.0
    assert stats['pair_recall'] == 2 / 6
    assert stats['cross_camera_recall'] == 0.0
    assert stats['single_camera_clusters'] == 1.0
