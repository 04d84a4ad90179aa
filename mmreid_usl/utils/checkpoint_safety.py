# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Make MMEngine checkpoints loadable with ``torch.load(weights_only=True)``.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default: only
tensors, containers and explicitly allow-listed globals are unpickled.
MMEngine writes a few more objects into ``checkpoint['meta']`` and
``checkpoint['message_hub']``:

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
"""
import pickle
import warnings
from typing import Callable, List

import numpy as np
import torch


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
    ``builtins.getattr``. Idempotent (the allow-list is a set). Called when
    :mod:`mmreid_usl` is imported; it changes no behaviour of MMEngine or
    torch other than letting these objects through the safe loader.
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


def silence_known_warnings() -> None:
    """Hide warnings about optional features this package never uses.

    ``mmcv-lite`` (the declared requirement) has no compiled ops; importing
    mmpretrain then warns that ``MultiScaleDeformableAttention`` cannot be
    imported. Called by the tools and :func:`setup_runtime` — not on import,
    so that importing :mod:`mmreid_usl` leaves the warning filters of the
    caller alone.
    """
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


def setup_runtime() -> None:
    """One call for command-line tools and inference entry points.

    Allow-lists MMEngine's checkpoint globals (see
    :func:`allow_mmengine_checkpoint_globals`) and silences the warnings of
    :func:`silence_known_warnings`. ``tools/train.py``, ``tools/test.py``,
    the analysis tools and :func:`mmreid_usl.apis.init_model` call it.
    """
    silence_known_warnings()
    allow_mmengine_checkpoint_globals()
