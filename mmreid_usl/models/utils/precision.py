# Copyright (c) mmreid_usl contributors. All rights reserved.
"""The precision of memory and loss maths."""
import torch
from torch import Tensor


def at_least_fp32(x: Tensor) -> Tensor:
    """``x`` in float32, or in float64 when it already is.

    Memories and contrastive losses run in float32 under AMP (fp16/bf16
    activations would lose the small differences of cosine similarities
    divided by a temperature of 0.05); a float64 model (the parity
    harness's exactness check, ``docs/parity.md``) keeps float64.
    """
    return x if x.dtype == torch.float64 else x.float()
