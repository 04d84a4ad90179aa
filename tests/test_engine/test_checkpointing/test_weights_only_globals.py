# Copyright (c) mmreid_usl contributors. All rights reserved.
import io
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer, MessageHub

from mmreid_usl.engine.checkpointing import setup_runtime
from mmreid_usl.engine.checkpointing.weights_only import \
    history_buffer_getattr

setup_runtime()  # installs the allow-list


def test_mmengine_meta_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_checkpoint_safety')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/pseudo_label/num_clusters', np.int64(12))
    hub.update_info('iter', 3)
    ckpt = dict(meta=dict(message_hub=hub.state_dict(),
                          seed=np.int64(1),
                          arr=np.arange(3, dtype=np.float32)),
                state_dict=dict(w=torch.ones(2)))
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)
    buf = loaded['meta']['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.current() == 1.5 and buf.mean() == 1.5  # statistics restored
    np.testing.assert_array_equal(loaded['meta']['arr'], np.arange(3))


def test_history_buffer_is_not_patched():
    # mmengine's own __getstate__ (it pickles statistics_methods through
    # getattr(HistoryBuffer, name)); importing mmreid_usl changes nothing
    assert HistoryBuffer.__getstate__.__module__ == \
        'mmengine.logging.history_buffer'
    state = HistoryBuffer().__getstate__()
    assert set(state['statistics_methods']) >= {'min', 'max', 'mean'}


def test_getattr_is_not_allow_listed():
    # allow-listing getattr would let a checkpoint reach arbitrary code
    assert getattr not in torch.serialization.get_safe_globals()


class _Getattr:
    """Pickles as ``getattr(obj, name)`` (what protocol 2 writes)."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return getattr, (self.obj, self.name)


@pytest.mark.parametrize('obj,name', [(HistoryBuffer, '__init__'),
                                      (ConfigDict, '__class__'),
                                      (HistoryBuffer, '__globals__')])
def test_other_getattr_is_refused(obj, name):
    buf = io.BytesIO()
    torch.save({'x': _Getattr(obj, name)}, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(buf, weights_only=True)


def test_history_buffer_getattr_allows_only_statistics():
    assert history_buffer_getattr(HistoryBuffer, 'mean') is \
        HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(HistoryBuffer, 'update')
