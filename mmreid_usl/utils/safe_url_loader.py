# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Load ``http(s)://`` and ``torchvision://`` checkpoints weights-only.

MMEngine 0.10's URL schemes (``load_from_http``, ``load_from_torchvision``)
go through :func:`torch.hub.load_state_dict_from_url`, whose
``weights_only`` argument defaults to ``False``: a ``Pretrained`` init from
a URL would unpickle arbitrary objects, although torch >= 2.6 loads local
files weights-only. :func:`register_weights_only_url_loaders` registers, with
MMEngine's public :meth:`CheckpointLoader.register_scheme`, loaders for the
same prefixes that differ only in ``weights_only=True``; the file names, the
torch hub cache (``torch.hub.get_dir()/checkpoints``), the rank-0-first
download under DDP and the torchvision name table are MMEngine's. The
``openmmlab://`` / ``mmcls://`` schemes (unused here) keep MMEngine's
loader.

Offline, a file that is not in the cache is one error
(:class:`WeightsUnavailableError`) that names the file, the folder the cache
expects it in (``TORCH_HOME`` honoured) and the ``init_cfg.checkpoint=PATH``
alternative, instead of urllib's traceback; ``tools/train.py`` prints it as
one line.
"""
import os.path as osp
from typing import Dict, Optional
from urllib.parse import urlparse

import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader, get_torchvision_models

HTTP_PREFIXES = ('http://', 'https://')
TORCHVISION_PREFIXES = ('modelzoo://', 'torchvision://')


class WeightsUnavailableError(OSError):
    """URL weights that are neither cached nor downloadable (offline)."""


def _cache_location(url: str, model_dir: Optional[str]) -> str:
    """Where :func:`torch.hub.load_state_dict_from_url` caches ``url``."""
    folder = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.join(folder, osp.basename(urlparse(url).path))


def _unavailable(url: str, model_dir: Optional[str],
                 err: BaseException) -> WeightsUnavailableError:
    path = _cache_location(url, model_dir)
    reason = getattr(err, 'reason', None) or err
    return WeightsUnavailableError(
        f'cannot download {url} ({type(err).__name__}: {reason}) and it is '
        f'not in the torch hub cache: put the file {osp.basename(path)} '
        f'into {osp.dirname(path)}/ (torch.hub.get_dir()/checkpoints; set '
        'TORCH_HOME to move the cache), or load a local copy with '
        '--cfg-options model.encoder.backbone.init_cfg.checkpoint=PATH (the '
        'init_cfg of the module that names this URL).')


def load_url_weights_only(url: str,
                          map_location: Optional[str] = None,
                          model_dir: Optional[str] = None) -> Dict:
    """:func:`torch.hub.load_state_dict_from_url` with ``weights_only=True``.

    Rank 0 reads (and, where absent and online, downloads) the file first;
    the other ranks wait at a barrier and then read the cached file.

    Raises:
        pickle.UnpicklingError: The file holds objects that are not tensors,
            containers or allow-listed globals.
        WeightsUnavailableError: The file is not cached and cannot be
            downloaded; the message says where to put it.
    """
    rank, world_size = get_dist_info()

    def _load() -> Dict:
        cached = osp.isfile(_cache_location(url, model_dir))
        try:
            return torch.hub.load_state_dict_from_url(
                url,
                model_dir=model_dir,
                map_location=map_location,
                progress=False,
                weights_only=True)
        except OSError as err:  # URLError, socket errors, HTTP errors
            if cached or isinstance(err, WeightsUnavailableError):
                raise
            raise _unavailable(url, model_dir, err) from None

    checkpoint = _load() if rank == 0 else None
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = _load()
    return checkpoint


def load_torchvision_weights_only(filename: str,
                                  map_location: Optional[str] = None
                                  ) -> Dict:
    """``torchvision://NAME`` (or ``modelzoo://NAME``) -> weights-only load.

    Raises:
        KeyError: ``NAME`` is not in torchvision's (MMEngine's) model table.
    """
    prefix = next(p for p in TORCHVISION_PREFIXES if filename.startswith(p))
    name = filename[len(prefix):]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f'{filename!r}: torchvision has no model weights '
                       f'named {name!r} (e.g. "resnet50", "mobilenet_v2", '
                       '"resnet50.imagenet1k_v2").')
    return load_url_weights_only(urls[name], map_location=map_location)


def _load_from_http(filename: str,
                    map_location: Optional[str] = None) -> Dict:
    return load_url_weights_only(filename, map_location=map_location)


def register_weights_only_url_loaders() -> None:
    """Make MMEngine's URL schemes load weights-only (idempotent)."""
    CheckpointLoader.register_scheme(
        HTTP_PREFIXES, _load_from_http, force=True)
    CheckpointLoader.register_scheme(
        TORCHVISION_PREFIXES, load_torchvision_weights_only, force=True)
