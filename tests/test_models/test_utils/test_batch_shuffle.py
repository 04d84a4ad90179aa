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
