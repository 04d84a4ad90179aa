# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Weights-only loading of checkpoints: local files and URL weights.

**Local checkpoints.** torch >= 2.6 loads checkpoints with
``weights_only=True`` by default: only tensors, containers and explicitly
allow-listed globals are unpickled. MMEngine writes a few more objects into
``checkpoint['meta']`` and ``checkpoint['message_hub']``:

- numpy arrays, dtypes and scalars (seed, dataset meta, logged values);
- :class:`mmengine.logging.HistoryBuffer` (one per logged scalar) and
  :class:`mmengine.config.ConfigDict`;
- inside every ``HistoryBuffer``, its ``statistics_methods`` dict. Pickle
  protocol 2 (``torch.save``'s default) writes each of these functions as
  ``getattr(HistoryBuffer, 'min')`` (``builtins.getattr`` applied to the
  class and the name).

Allow-listing ``builtins.getattr`` itself would let a checkpoint reach any
attribute of any allow-listed object. Instead the name ``builtins.getattr``
is bound, for the safe unpickler only, to :func:`history_buffer_getattr`,
which resolves exactly ``getattr(HistoryBuffer, <statistic name>)`` for
MMEngine's own statistics and refuses everything else. Nothing in MMEngine is
patched: the checkpoints it writes are unchanged.

**URL weights.** MMEngine 0.10's URL schemes (``load_from_http``,
``load_from_torchvision``) go through
:func:`torch.hub.load_state_dict_from_url`, whose ``weights_only`` argument
defaults to ``False``: a ``Pretrained`` init from a URL would unpickle
arbitrary objects, although torch >= 2.6 loads local files weights-only.
:func:`register_weights_only_url_loaders` registers, with MMEngine's public
:meth:`CheckpointLoader.register_scheme`, loaders for the same prefixes that
differ only in ``weights_only=True``; the file names, the torch hub cache
(``torch.hub.get_dir()/checkpoints``), the rank-0-first download under DDP
and the torchvision name table are MMEngine's. The ``openmmlab://`` /
``mmcls://`` schemes (unused here) keep MMEngine's loader.

Offline, a file that is not in the cache is one error
(:class:`WeightsUnavailableError`) that names the file, the folder the cache
expects it in (``TORCH_HOME`` honoured) and the ``init_cfg.checkpoint=PATH``
alternative, instead of urllib's traceback; ``tools/train.py`` prints it as
one line.

Nothing happens at import: :func:`enable_weights_only_loading` (called by
:func:`~mmreid_usl.engine.checkpointing.setup_runtime`, by
:class:`~mmreid_usl.engine.runner.ReIDRunner` and by
:func:`~mmreid_usl.utils.register_all_modules`) registers both, once per
process. ``weights_only=True`` is never turned off.
"""
import os.path as osp
import pickle
from typing import Callable, Dict, List, Optional
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.runner.checkpoint import CheckpointLoader, get_torchvision_models


def _numpy_globals() -> List:
    """The numpy callables and types a pickled ndarray / scalar refers to."""
    objs: List = [np.ndarray, np.dtype]
    # ndarray pickles reference ``_reconstruct``; its module moved in numpy 2.
    for mod_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = __import__(mod_name, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        objs += [mod._reconstruct, mod.scalar]
        break
    # dtype classes (``numpy.dtypes.Float64DType`` ...) used when pickling
    # dtypes with numpy >= 1.25, and the scalar types themselves.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        objs += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    objs += [
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
        np.uint32, np.uint64, np.float16, np.float32, np.float64
    ]
    return objs


#: The statistics MMEngine registers on every ``HistoryBuffer``.
HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj: object, name: str) -> Callable:
    """``getattr`` restricted to ``HistoryBuffer``'s own statistics.

    Bound to the global name ``builtins.getattr`` of the weights-only
    unpickler (see the module docstring). Any other use is an error.

    Raises:
        pickle.UnpicklingError: ``obj`` is not ``HistoryBuffer`` or ``name``
            is not one of :data:`HISTORY_BUFFER_STATISTICS`.
    """
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) in a weights-only checkpoint: '
        'only HistoryBuffer statistics '
        f'{HISTORY_BUFFER_STATISTICS} are allowed.')


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list exactly the globals MMEngine writes into checkpoints.

    Registers with :func:`torch.serialization.add_safe_globals`:
    ``HistoryBuffer``, ``ConfigDict``, the numpy reconstruction helpers and
    scalar/dtype types, and :func:`history_buffer_getattr` under the name
    ``builtins.getattr``. Idempotent (the allow-list is a set). It changes
    no behaviour of MMEngine or torch other than letting these objects
    through the safe loader.
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4: no weights_only default
        return
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    add_safe_globals([HistoryBuffer, ConfigDict] + _numpy_globals())
    try:
        add_safe_globals([(history_buffer_getattr, 'builtins.getattr')])
    except (TypeError, ValueError):  # pragma: no cover (torch < 2.5)
        # No (callable, name) form: such torch versions do not load with
        # weights_only=True by default, so MMEngine's loads still work.
        pass


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


def enable_weights_only_loading() -> None:
    """Allow-list MMEngine's checkpoint globals and load URLs weights-only.

    :func:`allow_mmengine_checkpoint_globals` and
    :func:`register_weights_only_url_loaders`; idempotent, cheap after the
    first call.
    """
    global _enabled
    if _enabled:
        return
    allow_mmengine_checkpoint_globals()
    register_weights_only_url_loaders()
    _enabled = True


_enabled = False


def load_weights_only(filename: str, map_location: str = 'cpu') -> Dict:
    """Read a checkpoint (path or URL) with MMEngine's public loader, after
    :func:`enable_weights_only_loading`."""
    enable_weights_only_loading()
    return CheckpointLoader.load_checkpoint(
        filename, map_location=map_location, logger=None)
