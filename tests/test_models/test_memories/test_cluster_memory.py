# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import ClusterMemory


def _sequential_reference(mem, feats, targets, m):
    """The official loop: one sample at a time, in batch order."""
    mem = mem.clone()
    for x, y in zip(feats, targets):
        mem[y] = m * mem[y] + (1 - m) * x
        mem[y] /= mem[y].norm()
    return mem


def _hard_reference(mem, feats, targets, m):
    mem = mem.clone()
    old = mem.clone()
    for y in torch.unique(targets):
        xs = feats[targets == y]
        x_hard = xs[(xs @ old[y]).argmin()]
        mem[y] = F.normalize(m * old[y] + (1 - m) * x_hard, dim=0)
    return mem


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(24, 8, generator=g), dim=1)
    targets = torch.randint(0, 5, (24, ), generator=g)
    centroids = torch.randn(5, 8, generator=g)
    return feats, targets, centroids


def test_momentum_update_matches_sequential_loop(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8, momentum=0.2)
    memory.reset(centroids)
    expected = _sequential_reference(memory.features, feats, targets, 0.2)
    memory.update(feats, targets)
    torch.testing.assert_close(memory.features, expected)


def test_hard_update_matches_reference(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8, momentum=0.1, update_mode='hard')
    memory.reset(centroids)
    expected = _hard_reference(memory.features, feats, targets, 0.1)
    memory.update(feats, targets)
    torch.testing.assert_close(memory.features, expected)


def test_logits_use_snapshot_and_gradient_of_old_memory(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8, temperature=0.05)
    memory.reset(centroids)
    old = memory.features.clone()
    q = feats.clone().requires_grad_(True)
    logits = memory(q)
    torch.testing.assert_close(logits, q.detach() @ old.t() / 0.05)
    loss = F.cross_entropy(logits, targets)
    memory.update(q, targets)  # in-place update before backward
    loss.backward()
    q2 = feats.clone().requires_grad_(True)
    F.cross_entropy(q2 @ old.t() / 0.05, targets).backward()
    torch.testing.assert_close(q.grad, q2.grad)
    assert not torch.equal(memory.features, old)


def test_reset_normalises_and_empty_memory_errors():
    memory = ClusterMemory(feat_dim=4)
    with pytest.raises(RuntimeError, match='empty'):
        memory(torch.randn(2, 4))
    memory.reset(torch.tensor([[3., 0, 0, 4]]))
    torch.testing.assert_close(memory.features,
                               torch.tensor([[0.6, 0, 0, 0.8]]))
    with pytest.raises(ValueError, match='centroids must be'):
        memory.reset(torch.zeros(3, 5))
    memory.reset(torch.zeros(0, 4))
    assert memory.num_clusters == 0


def test_resized_buffer_loads_from_checkpoint(batch):
    _, _, centroids = batch
    src = ClusterMemory(feat_dim=8)
    src.reset(centroids)
    dst = ClusterMemory(feat_dim=8)
    dst.reset(torch.randn(2, 8))
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst.features, src.features)
    # mmengine's loader (non-strict) must also restore it
    from mmengine.runner.checkpoint import load_state_dict
    dst2 = ClusterMemory(feat_dim=8)
    load_state_dict(dst2, src.state_dict())
    torch.testing.assert_close(dst2.features, src.features)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='update_mode'):
        ClusterMemory(feat_dim=4, update_mode='avg')
    with pytest.raises(ValueError, match='momentum'):
        ClusterMemory(feat_dim=4, momentum=1.5)
