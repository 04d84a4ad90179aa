# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Make MMEngine checkpoints loadable with ``torch.load(weights_only=True)``."""
from typing import List

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


_DEFAULT_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer.__getstate__`` without the default statistics.

    MMEngine pickles ``HistoryBuffer.statistics_methods`` with every buffer,
    and its functions are written as ``getattr(HistoryBuffer, 'min')``.
    Allow-listing the builtin ``getattr`` would let a malicious checkpoint
    reach any attribute (and through ``__globals__`` any builtin), so instead
    the four default methods — which ``__setstate__`` re-registers anyway —
    are left out. Custom methods registered by the user are still pickled.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    custom = {
        name: method
        for name, method in self._statistics_methods.items()
        if name not in _DEFAULT_STATISTICS
    }
    if custom:
        state['statistics_methods'] = custom
    return state


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list the globals MMEngine writes into checkpoints.

    MMEngine stores the message hub (``HistoryBuffer`` objects holding numpy
    arrays) and numpy scalars in ``checkpoint['meta']``. torch >= 2.6 loads
    with ``weights_only=True`` by default and rejects them; allow-listing
    keeps the safe loader on instead of turning ``weights_only`` off.
    ``HistoryBuffer`` is also made to pickle without ``getattr`` references
    (see :func:`_history_buffer_getstate`).
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4: no weights_only default
        return
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    add_safe_globals([HistoryBuffer, ConfigDict] + _numpy_globals())
