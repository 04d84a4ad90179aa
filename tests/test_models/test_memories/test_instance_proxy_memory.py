# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import InstanceProxyMemory
from mmreid_usl.structures import PseudoLabelResult

DIM = 4


def _result(epoch=0):
    g = torch.Generator().manual_seed(1)
    student = F.normalize(torch.randn(12, DIM, generator=g), dim=1)
    momentum = F.normalize(torch.randn(12, DIM, generator=g), dim=1)
    # cluster 0: 5 members, cluster 1: 2 members, cluster 2: 3, outliers -1
    labels = torch.tensor([0, 1, 0, -1, 2, 0, 2, 1, 0, 2, 0, -1])
    return PseudoLabelResult.from_labels(
        labels, {
            'student': student,
            'momentum': momentum
        },
        cluster_encoder='student',
        epoch=epoch)


def _reference_draw(labels, num_clusters, k, seed):
    """Loop reference: member floor(u * n_c) of cluster c (dataset order)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(num_clusters, k, generator=gen, dtype=torch.float64)
    rows = []
    for c in range(num_clusters):
        members = torch.nonzero(labels == c).flatten()
        rows.append(members[(u[c] * len(members)).long()])
    return torch.stack(rows)


def test_fill_draws_k_members_with_replacement_from_momentum_bank():
    result = _result(epoch=3)
    mem = InstanceProxyMemory(DIM, num_instances=16, seed=7)
    assert mem.encoder == 'momentum'
    mem.reset(result)
    assert mem.features.shape == (3, 16, DIM)
    index = _reference_draw(result.labels, 3, 16, seed=7 + 3)
    torch.testing.assert_close(mem.features,
                               result.bank('momentum')[index])
    for c in range(3):
        # every slot is a member of its cluster; with 16 draws from 2-5
        # members there are repeats (with replacement)
        assert (result.labels[index[c]] == c).all()
        assert len(torch.unique(index[c])) < 16
    # the cluster of 2 members: both drawn
    assert set(index[1].tolist()) == {1, 7}


def test_fill_is_seeded_by_epoch():
    a, b, c = (InstanceProxyMemory(DIM, num_instances=8) for _ in range(3))
    a.reset(_result(epoch=0))
    b.reset(_result(epoch=0))
    c.reset(_result(epoch=1))
    assert torch.equal(a.features, b.features)
    assert not torch.equal(a.features, c.features)


def test_replacement_update_cyclic_fill():
    result = _result()
    mem = InstanceProxyMemory(DIM, num_instances=4)
    mem.reset(result)
    before = mem.features.clone()
    g = torch.Generator().manual_seed(2)
    feats = F.normalize(torch.randn(8, DIM, generator=g), dim=1)
    # cluster 2: 3 instances (rows 0, 3, 5); cluster 0: 5 (1, 2, 4, 6, 7)
    targets = torch.tensor([2, 0, 0, 2, 0, 2, 0, 0])
    mem.update(feats, targets)
    torch.testing.assert_close(mem.features[2], feats[[0, 3, 5, 0]])
    torch.testing.assert_close(mem.features[0], feats[[1, 2, 4, 6]])
    torch.testing.assert_close(mem.features[1], before[1])  # not in batch


def test_clear_resize_on_load_and_errors():
    mem = InstanceProxyMemory(DIM, num_instances=4)
    with pytest.raises(RuntimeError, match='empty'):
        mem.update(torch.randn(2, DIM), torch.zeros(2, dtype=torch.long))
    mem.reset(_result())
    other = InstanceProxyMemory(DIM, num_instances=4)
    assert other.num_clusters == 0
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(other, mem.state_dict())
    torch.testing.assert_close(other.features, mem.features)
    other.clear()
    assert other.num_clusters == 0
    with pytest.raises(ValueError, match='no member'):
        InstanceProxyMemory.draw_members(torch.tensor([0, 2]), 3, 4, 0)
    with pytest.raises(ValueError, match='num_instances'):
        InstanceProxyMemory(DIM, num_instances=0)
    with pytest.raises(ValueError, match=r'\(N, 5\)'):
        InstanceProxyMemory(5).reset(_result())
