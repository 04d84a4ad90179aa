# Copyright (c) mmreid_usl contributors. All rights reserved.
from .pseudo_identity_sampler import PseudoIdentitySampler

__all__ = ['PseudoIdentitySampler']
