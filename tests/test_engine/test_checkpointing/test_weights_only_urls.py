# Copyright (c) mmreid_usl contributors. All rights reserved.
"""URL checkpoints (``torchvision://``, ``https://``) load weights-only.

The files are served from a temporary torch hub cache under the real file
names of the URLs, so nothing is downloaded.
"""
import os
import os.path as osp
import pickle

import pytest
import torch
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader, get_torchvision_models

from mmreid_usl.engine.checkpointing import (load_url_weights_only,
                                             setup_runtime)

setup_runtime()  # registers the loaders

URL = 'https://example.com/releases/v1/tiny_model-0123abcd.pth'


class NotAWeight:
    """A global no weights-only checkpoint may reference."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    path = osp.join(torch.hub.get_dir(), 'checkpoints')
    assert path.startswith(str(tmp_path))
    os.makedirs(path)
    return path


def _serve(hub_dir, url, obj):
    torch.save(obj, osp.join(hub_dir, osp.basename(url)))


def test_schemes_are_weights_only_loaders():
    for prefix in ('torchvision://resnet50', 'modelzoo://resnet50',
                   'https://a/b.pth', 'http://a/b.pth'):
        loader = CheckpointLoader._get_checkpoint_loader(prefix)
        assert loader.__module__ == \
            'mmreid_usl.engine.checkpointing.weights_only'


def test_torchvision_scheme_reads_the_hub_cache(hub_dir):
    url = get_torchvision_models()['mobilenet_v2']
    state = {'features.0.0.weight': torch.arange(6.).view(2, 3)}
    _serve(hub_dir, url, state)
    out = CheckpointLoader.load_checkpoint('torchvision://mobilenet_v2')
    assert torch.equal(out['features.0.0.weight'],
                       state['features.0.0.weight'])


def test_url_with_foreign_object_is_refused(hub_dir):
    _serve(hub_dir, URL, {'w': torch.ones(2), 'payload': NotAWeight()})
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint(URL)
    url = get_torchvision_models()['resnet50']
    _serve(hub_dir, url, {'payload': NotAWeight()})
    with pytest.raises(pickle.UnpicklingError):
        CheckpointLoader.load_checkpoint('torchvision://resnet50')


def test_load_url_weights_only_map_location(hub_dir):
    _serve(hub_dir, URL, {'w': torch.ones(3)})
    out = load_url_weights_only(URL, map_location='cpu')
    assert out['w'].device.type == 'cpu' and out['w'].sum() == 3


def test_unknown_torchvision_name(hub_dir):
    with pytest.raises(KeyError, match='no model weights named'):
        CheckpointLoader.load_checkpoint('torchvision://resnet_51')


def test_pretrained_init_cfg_goes_through_it(hub_dir):

    class Tiny(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Pretrained', checkpoint=URL))
            self.fc = torch.nn.Linear(3, 2)

    _serve(hub_dir, URL, {
        'fc.weight': torch.full((2, 3), 0.5),
        'fc.bias': torch.zeros(2)
    })
    model = Tiny()
    model.init_weights()
    assert torch.equal(model.fc.weight, torch.full((2, 3), 0.5))
    _serve(hub_dir, URL, {'fc.weight': NotAWeight()})
    with pytest.raises(pickle.UnpicklingError):
        Tiny().init_weights()


def _offline(monkeypatch):
    from urllib.error import URLError

    def no_network(url, dst, *args, **kwargs):
        raise URLError('[Errno -3] Temporary failure in name resolution')

    monkeypatch.setattr('torch.hub.download_url_to_file', no_network)


def test_offline_missing_file_is_one_clear_error(hub_dir, monkeypatch):
    """Issue 24, case 8: ~90 lines of URLError traceback said neither which
    file was missing nor where the cache expects it."""
    from mmreid_usl.engine.checkpointing import WeightsUnavailableError
    _offline(monkeypatch)
    url = get_torchvision_models()['mobilenet_v2']
    with pytest.raises(WeightsUnavailableError) as err:
        CheckpointLoader.load_checkpoint('torchvision://mobilenet_v2')
    msg = str(err.value)
    assert f'cannot download {url}' in msg
    assert 'Temporary failure in name resolution' in msg
    # the exact file name, in the cache of TORCH_HOME
    assert f'put the file {osp.basename(url)} into {hub_dir}/' in msg
    assert 'init_cfg.checkpoint=PATH' in msg
    assert '\n' not in msg
    # once the file is there, it loads offline
    _serve(hub_dir, url, {'w': torch.ones(1)})
    assert CheckpointLoader.load_checkpoint(
        'torchvision://mobilenet_v2')['w'].item() == 1


@pytest.mark.slow  # a fresh Python process
def test_importing_the_package_registers_no_scheme():
    """Importing mmreid_usl (and its sub-packages) changes nothing outside
    its registries: the URL loaders and the allow-list come with
    setup_runtime() (the tools, init_model), the Runner and
    register_all_modules()."""
    import subprocess
    import sys
    code = ('import mmreid_usl, mmreid_usl.engine, mmreid_usl.models, '
            'mmreid_usl.apis\n'
            'from mmengine.runner.checkpoint import CheckpointLoader\n'
            'import torch.serialization as ts\n'
            "loader = CheckpointLoader._schemes['https://']\n"
            "assert not loader.__module__.startswith('mmreid_usl'), loader\n"
            "get = getattr(ts, 'get_safe_globals', lambda: [])\n"
            "assert not [g for g in get() if 'mmreid_usl' in str(g)]\n"
            'from mmreid_usl.utils import register_all_modules\n'
            'register_all_modules()\n'
            "loader = CheckpointLoader._schemes['https://']\n"
            "assert loader.__module__.startswith('mmreid_usl'), loader\n")
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
