# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score

from mmreid_usl.registry import TASK_UTILS


def test_infomap_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(12, 32, generator=g))
    true = torch.arange(12).repeat_interleave(15)
    x = centres[true] + 0.15 * torch.randn(180, 32, generator=g)
    x = torch.cat([x, 10 * torch.randn(3, 32, generator=g)])  # 3 loners
    x = torch.nn.functional.normalize(x, dim=1)
    clusterer = TASK_UTILS.build(
        dict(type='InfomapClusterer', k=10, min_sim=0.5))
    labels = clusterer(x)
    assert labels.dtype == np.int64 and labels.shape == (183, )
    assert (labels[-3:] == -1).all()
    assert len(np.unique(labels[labels >= 0])) == labels.max() + 1
    assert adjusted_rand_score(true.numpy(), labels[:180]) > 0.95
    # no edge above min_sim: everything is an outlier
    assert (TASK_UTILS.build(dict(type='InfomapClusterer',
                                  min_sim=1.1))(x) == -1).all()
