# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F

from mmreid_usl.models import DiscrepantClusterMemory
from mmreid_usl.structures import PseudoLabelResult

DIM = 8


def _sequential(mem, feats, targets, m):
    """Unofficial proxy 1: one momentum step per sample, batch order."""
    mem = mem.clone()
    for x, y in zip(feats, targets):
        mem[y] = m * mem[y] + (1 - m) * x
        mem[y] /= mem[y].norm()
    return mem


def _hard(mem, feats, targets, m):
    """Cluster Contrast Eq. 2: the least similar instance per identity."""
    mem, old = mem.clone(), mem.clone()
    for y in torch.unique(targets):
        xs = feats[targets == y]
        x = xs[(xs @ old[y]).argmin()]
        mem[y] = F.normalize(m * old[y] + (1 - m) * x, dim=0)
    return mem


def _mean(mem, feats, targets, m):
    """Unofficial proxy 2: one momentum step with the batch mean."""
    mem = mem.clone()
    for y in torch.unique(targets):
        x = feats[targets == y].mean(0)
        mem[y] = F.normalize(m * mem[y] + (1 - m) * x, dim=0)
    return mem


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    bank = F.normalize(torch.randn(30, DIM, generator=g), dim=1)
    labels = torch.arange(30) % 5
    labels[:3] = -1
    result = PseudoLabelResult.from_labels(labels, {'student': bank})
    feats = F.normalize(torch.randn(24, DIM, generator=g), dim=1)
    targets = torch.randint(0, 5, (24, ), generator=g)
    return result, feats, targets


def test_reset_puts_normalised_centroid_in_every_proxy(data):
    result, _, _ = data
    mem = DiscrepantClusterMemory(DIM, update_modes=('hard', 'mean',
                                                     'momentum'))
    mem.reset(result)
    assert mem.num_proxies == 3 and mem.num_clusters == 5
    bank, labels = result.bank('student'), result.labels
    expect = torch.stack([
        F.normalize(bank[labels == c].mean(0), dim=0) for c in range(5)
    ])
    for m in range(3):
        torch.testing.assert_close(mem.features[m], expect)
    assert all(int(p.num_resets) == 1 for p in mem.proxies)


@pytest.mark.parametrize('mode,reference', [('hard', _hard),
                                            ('mean', _mean),
                                            ('momentum', _sequential)])
def test_each_update_rule_matches_sequential_reference(
        data, mode, reference):
    result, feats, targets = data
    mem = DiscrepantClusterMemory(DIM, update_modes=(mode, ), old_weight=0.1)
    mem.reset(result)
    expect = reference(mem.features[0], feats, targets, 0.1)
    mem.update(feats, targets)
    torch.testing.assert_close(mem.features[0], expect)


def test_default_proxies_drift_apart(data):
    result, feats, targets = data
    mem = DiscrepantClusterMemory(DIM)  # ('hard', 'mean'), old weight 0.1
    assert mem.update_modes == ('hard', 'mean')
    mem.reset(result)
    start = mem.features[0].clone()
    mem.update(feats, targets)
    torch.testing.assert_close(mem.features[0],
                               _hard(start, feats, targets, 0.1))
    torch.testing.assert_close(mem.features[1],
                               _mean(start, feats, targets, 0.1))
    touched = torch.unique(targets)
    assert not torch.allclose(mem.features[0][touched],
                              mem.features[1][touched])
    untouched = [c for c in range(5) if c not in touched.tolist()]
    for c in untouched:
        torch.testing.assert_close(mem.features[:, c], start[c].expand(2, -1))


def test_checkpoint_with_another_cluster_count(data):
    result, feats, targets = data
    src = DiscrepantClusterMemory(DIM)
    src.reset(result)
    src.update(feats, targets)
    dst = DiscrepantClusterMemory(DIM)
    small = PseudoLabelResult.from_labels(
        torch.arange(6) % 2, {'student': torch.randn(6, DIM)})
    dst.reset(small)
    assert dst.num_clusters == 2
    from mmengine.runner.checkpoint import load_state_dict
    load_state_dict(dst, src.state_dict())
    torch.testing.assert_close(dst.features, src.features)


def test_invalid_arguments():
    with pytest.raises(ValueError, match='update_modes'):
        DiscrepantClusterMemory(DIM, update_modes='hard')
    with pytest.raises(ValueError, match='update_modes'):
        DiscrepantClusterMemory(DIM, update_modes=())
    with pytest.raises(ValueError, match='update_mode'):
        DiscrepantClusterMemory(DIM, update_modes=('hard', 'median'))


def test_market_branch_of_the_unofficial_code_by_hand():
    """The branch the unofficial code labels ``#Market1501`` (the config
    ``dcmip_r50-code_market.py``): proxy 1 takes the batch instance LEAST
    similar to it, proxy 2 the batch mean, old weight 0.1; values worked out
    by hand in 2-D. The branch labelled ``#MSMT17`` (sequential steps,
    ``'momentum'``) gives another proxy 1."""
    result = PseudoLabelResult.from_labels(
        torch.tensor([0, 0, 1, 1]), {
            'student':
            torch.tensor([[1., 0.], [1., 0.], [0., 1.], [0., 1.]])
        })
    # cluster 0: the hardest [0.6, 0.8] (similarity 0.6) first, then [1, 0];
    # cluster 1: the hardest [0.6, 0.8] (0.8), then [0, 1] (similarity 1)
    feats = torch.tensor([[0.6, 0.8], [1., 0.], [0.6, 0.8], [0., 1.]])
    targets = torch.tensor([0, 0, 1, 1])
    mem = DiscrepantClusterMemory(2, update_modes=('hard', 'mean'))
    mem.reset(result)
    mem.update(feats, targets)
    # proxy 1: 0.1 * [1, 0] + 0.9 * [0.6, 0.8] = [0.64, 0.72];
    #          0.1 * [0, 1] + 0.9 * [0.6, 0.8] = [0.54, 0.82]
    hard = torch.tensor([[0.64, 0.72], [0.54, 0.82]])
    hard /= torch.tensor([[0.928**0.5], [0.964**0.5]])
    # proxy 2: means [0.8, 0.4] and [0.3, 0.9];
    #          0.1 * [1, 0] + 0.9 * [0.8, 0.4] = [0.82, 0.36],
    #          0.1 * [0, 1] + 0.9 * [0.3, 0.9] = [0.27, 0.91]
    mean = torch.tensor([[0.82, 0.36], [0.27, 0.91]])
    mean /= torch.tensor([[0.802**0.5], [0.901**0.5]])
    torch.testing.assert_close(mem.features[0], hard)
    torch.testing.assert_close(mem.features[1], mean)
    msmt = DiscrepantClusterMemory(2, update_modes=('momentum', 'mean'))
    msmt.reset(result)
    msmt.update(feats, targets)
    assert not torch.allclose(msmt.features[0], hard, atol=1e-2)
    torch.testing.assert_close(msmt.features[1], mean)
