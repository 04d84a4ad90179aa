# Copyright (c) mmreid_usl contributors. All rights reserved.
import pytest
import torch
import torch.nn as nn

from mmreid_usl.models.utils.batch_shuffle import (grouped_forward,
                                                   shuffle_bn_forward)


def test_shuffle_forward_is_aligned_with_input():
    x = torch.arange(12.).view(12, 1)
    out = shuffle_bn_forward(lambda t: t * 2, x, num_groups=3)
    assert torch.equal(out, x * 2)


def test_groups_use_their_own_batch_statistics():
    bn = nn.BatchNorm1d(1, affine=False).train()
    x = torch.cat([torch.zeros(4, 1), torch.full((4, 1), 10.)])
    x[0, 0], x[4, 0] = 1., 11.
    grouped = grouped_forward(bn, x, num_groups=2)
    # each half normalised with its own mean: identical outputs per half
    assert torch.allclose(grouped[:4], grouped[4:], atol=1e-5)
    whole = grouped_forward(bn, x, num_groups=1)
    assert not torch.allclose(whole[:4], whole[4:])
    with pytest.raises(ValueError):
        grouped_forward(bn, x, num_groups=3)


def test_shuffle_randomises_group_membership():
    seen = set()

    def record(chunk):
        seen.add(tuple(sorted(chunk.flatten().tolist())))
        return chunk

    torch.manual_seed(0)
    x = torch.arange(8.).view(8, 1)
    for _ in range(5):
        shuffle_bn_forward(record, x, num_groups=2)
    assert len(seen) > 2  # not always the same contiguous halves


def _bn_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()


def test_first_group_keeps_only_the_first_groups_running_stats():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    every, first, alone = _bn_net(), _bn_net(), _bn_net()
    out_every = grouped_forward(every, x, 2, 'every_group')
    out_first = grouped_forward(first, x, 2, 'first_group')
    alone(x[:4])  # what DataParallel's replica on GPU 0 does
    # same outputs (batch statistics per group) ...
    assert torch.allclose(out_every, out_first)
    # ... but only the first group moved the running statistics
    assert torch.equal(first[1].running_mean, alone[1].running_mean)
    assert torch.equal(first[1].running_var, alone[1].running_var)
    assert int(first[1].num_batches_tracked) == 1
    assert not torch.allclose(every[1].running_mean, alone[1].running_mean)
    assert int(every[1].num_batches_tracked) == 2


def test_first_group_gradients_reach_the_shared_parameters():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    every, first = _bn_net(), _bn_net()
    for net, mode in ((every, 'every_group'), (first, 'first_group')):
        (grouped_forward(net, x, 2, mode) ** 2).sum().backward()
    for a, b in zip(every.parameters(), first.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)
    with pytest.raises(ValueError, match='running_stats'):
        grouped_forward(first, x, 2, 'last_group')


def test_no_shuffle_forwards_contiguous_chunks_in_order():
    """``shuffle=False``: DataParallel's split (consecutive chunks, in
    order), nothing drawn from the random generator."""
    chunks = []

    def record(chunk):
        chunks.append(chunk.flatten().tolist())
        return chunk * 2

    x = torch.arange(12.).view(12, 1)
    torch.manual_seed(0)
    rng = torch.get_rng_state()
    for _ in range(3):
        out = shuffle_bn_forward(record, x, num_groups=3, shuffle=False)
        assert torch.equal(out, x * 2)
    assert torch.equal(torch.get_rng_state(), rng)
    assert chunks == [[0., 1., 2., 3.], [4., 5., 6., 7.], [8., 9., 10.,
                                                           11.]] * 3
    # the default shuffles (another permutation than the identity)
    chunks.clear()
    shuffle_bn_forward(record, x, num_groups=3)
    assert chunks != [[0., 1., 2., 3.], [4., 5., 6., 7.], [8., 9., 10., 11.]]
