# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import ClusterMemory, ClusterNCELoss
from mmreid_usl.structures import PseudoLabelResult


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
    memory = ClusterMemory(feat_dim=8, old_weight=0.2)
    memory.set_proxies(centroids)
    expected = _sequential_reference(memory.features, feats, targets, 0.2)
    memory.update(feats, targets)
    torch.testing.assert_close(memory.features, expected)


def test_hard_update_matches_reference(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8, old_weight=0.1, update_mode='hard')
    memory.set_proxies(centroids)
    expected = _hard_reference(memory.features, feats, targets, 0.1)
    memory.update(feats, targets)
    torch.testing.assert_close(memory.features, expected)


def test_loss_uses_snapshot_and_gradient_of_old_memory(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8)
    memory.set_proxies(centroids)
    old = memory.features.clone()
    q = feats.clone().requires_grad_(True)
    torch.testing.assert_close(memory(q), q.detach() @ old.t())
    loss = ClusterNCELoss(temperature=0.05)(q, memory.features, targets)
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
    memory.set_proxies(torch.tensor([[3., 0, 0, 4]]))
    torch.testing.assert_close(memory.features,
                               torch.tensor([[0.6, 0, 0, 0.8]]))
    with pytest.raises(ValueError, match='proxies must be'):
        memory.set_proxies(torch.zeros(3, 5))
    memory.set_proxies(torch.zeros(0, 4))
    assert memory.num_clusters == 0


def test_resized_buffer_loads_from_checkpoint(batch):
    _, _, centroids = batch
    src = ClusterMemory(feat_dim=8)
    src.set_proxies(centroids)
    dst = ClusterMemory(feat_dim=8)
    dst.set_proxies(torch.randn(2, 8))
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
    with pytest.raises(ValueError, match='old_weight'):
        ClusterMemory(feat_dim=4, old_weight=1.5)
    with pytest.raises(ValueError, match='init_mode'):
        ClusterMemory(feat_dim=4, init_mode='first')


def _mean_reference(mem, feats, targets, m):
    mem = mem.clone()
    old = mem.clone()
    for y in torch.unique(targets):
        mean = feats[targets == y].mean(0)
        mem[y] = F.normalize(m * old[y] + (1 - m) * mean, dim=0)
    return mem


def test_mean_update_matches_reference(batch):
    feats, targets, centroids = batch
    memory = ClusterMemory(feat_dim=8, old_weight=0.1, update_mode='mean')
    memory.set_proxies(centroids)
    expected = _mean_reference(memory.features, feats, targets, 0.1)
    memory.update(feats, targets)
    torch.testing.assert_close(memory.features, expected)
    # rows of clusters absent from the batch do not move
    absent = torch.tensor([c for c in range(5) if c not in targets.tolist()])
    if len(absent):
        torch.testing.assert_close(memory.features[absent],
                                   F.normalize(centroids, dim=1)[absent])


def test_reset_from_a_result_reads_the_named_bank():
    """The memory is built from ``encoder``'s bank of the result."""
    g = torch.Generator().manual_seed(1)
    student = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    momentum = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    result = PseudoLabelResult.from_labels(
        [0, 0, 1, 1, -1, 1],
        dict(student=student, momentum=momentum),
        cluster_encoder='student')
    own = ClusterMemory(feat_dim=4)
    own.reset(result)
    torch.testing.assert_close(own.features,
                               F.normalize(result.centroids, dim=1))
    other = ClusterMemory(feat_dim=4, encoder='momentum')
    other.reset(result)
    expected = torch.stack(
        [momentum[[0, 1]].mean(0), momentum[[2, 3, 5]].mean(0)])
    torch.testing.assert_close(other.features, F.normalize(expected, dim=1))
    with pytest.raises(KeyError, match="no 'ema' feature bank"):
        ClusterMemory(feat_dim=4, encoder='ema').reset(result)


def test_needs_bank_rows_declarations():
    """The memories that read only ``result.centroids_of`` declare it; the
    others (and any memory that says nothing) get the bank rows."""
    from mmreid_usl.models import (CameraProxyMemory,
                                   DiscrepantClusterMemory,
                                   InstanceProxyMemory)
    from mmreid_usl.models.memories.base_memory import BaseMemory
    assert not ClusterMemory(8).needs_bank_rows
    assert ClusterMemory(8, init_mode='random').needs_bank_rows
    assert not DiscrepantClusterMemory(8).needs_bank_rows
    assert CameraProxyMemory(8).needs_bank_rows
    assert InstanceProxyMemory(8).needs_bank_rows
    assert BaseMemory().needs_bank_rows


def test_reset_from_a_result_without_rows():
    """A mean-initialised memory resets from the centroids of a result
    whose banks were not gathered; a random one names the fix."""
    centroids = torch.tensor([[3., 4.], [0., 2.]])
    result = PseudoLabelResult(labels=torch.tensor([0, 1, 1, -1]),
                               num_clusters=2,
                               num_outliers=1,
                               centroids=centroids,
                               bank_centroids=dict(student=centroids),
                               banks_gathered=False)
    mem = ClusterMemory(2)
    mem.reset(result)
    torch.testing.assert_close(mem.features, F.normalize(centroids, dim=1))
    with pytest.raises(RuntimeError, match='needs_bank_rows'):
        ClusterMemory(2, init_mode='random').reset(result)
