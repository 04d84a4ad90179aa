# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from mmreid_usl.registry import TASK_UTILS


def test_kmeans_clusters():
    g = torch.Generator().manual_seed(0)
    centres = 5 * torch.randn(8, 16, generator=g)
    true = torch.arange(8).repeat_interleave(50)
    x = centres[true] + 0.1 * torch.randn(400, 16, generator=g)
    labels = TASK_UTILS.build(dict(type='KMeansClusterer',
                                   num_clusters=8, nredo=10))(x)
    assert labels.dtype == np.int64 and labels.min() == 0
    assert len(np.unique(labels)) == labels.max() + 1
    assert adjusted_rand_score(true.numpy(), labels) > 0.95
