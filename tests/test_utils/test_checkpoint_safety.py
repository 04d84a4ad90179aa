# Copyright (c) mmreid_usl contributors. All rights reserved.
import numpy as np
import torch
from mmengine.logging import HistoryBuffer, MessageHub

import mmreid_usl  # noqa: F401  (installs the allow-list)


def test_mmengine_meta_loads_with_weights_only(tmp_path):
    hub = MessageHub.get_instance('test_checkpoint_safety')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/pseudo_label/num_clusters', np.int64(12))
    hub.update_info('iter', 3)
    ckpt = dict(
        meta=dict(
            message_hub=hub.state_dict(),
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


def test_getattr_is_not_allow_listed():
    # allow-listing getattr would let a checkpoint reach arbitrary code
    assert getattr not in torch.serialization.get_safe_globals()
