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
