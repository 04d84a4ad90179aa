# Copyright (c) mmreid_usl contributors. All rights reserved.
"""What a camera-aware memory hands a camera-aware loss."""
from typing import NamedTuple, Optional

from torch import Tensor


class CameraProxies(NamedTuple):
    """Per-(cluster, camera) proxies and the batch's cameras in their index.

    Computed by ``CameraProxyMemory.camera_proxies(camids)`` and taken whole
    by ``CrossCameraProxyLoss``, so the loss never reads memory buffers.

    Attributes:
        proxies (Tensor): ``(M, D)`` camera proxies.
        labels (Tensor): ``(M,)`` cluster of each proxy.
        cams (Tensor, optional): ``(M,)`` camera index of each proxy.
        query_cams (Tensor): ``(B,)`` camera index of each batch sample in
            the same camera -> index map (-1: a camera the memory has not
            seen).
    """
    proxies: Tensor
    labels: Tensor
    cams: Optional[Tensor]
    query_cams: Tensor
