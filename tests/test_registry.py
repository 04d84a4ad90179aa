# Copyright (c) mmreid_usl contributors. All rights reserved.
import importlib

from mmengine.registry import Registry
from mmengine.visualization import LocalVisBackend, Visualizer

import mmreid_usl.registry as registry


#: Registries with no MMEngine root to hang from.
OWN_REGISTRIES = ('CAMERA_STRATEGIES', )


def _registries():
    return {name: getattr(registry, name) for name in registry.__all__}


def test_every_location_is_importable():
    regs = _registries()
    assert 'MODELS' in regs and 'VISUALIZERS' in regs
    for name, reg in regs.items():
        assert isinstance(reg, Registry), name
        if name not in OWN_REGISTRIES:  # a child of mmengine's root
            assert reg.parent is not None, name
        for location in reg._locations:
            # a location that does not exist (e.g. an empty, removed package)
            # would only fail when the registry is first searched
            importlib.import_module(location)


def test_visualizers_are_mmengine_ones():
    assert registry.VISUALIZERS.get('Visualizer') is Visualizer
    assert registry.VISBACKENDS.get('LocalVisBackend') is LocalVisBackend
    # mmreid_usl.visualization holds the rank-list renderer (functions); it
    # registers no visualizer of its own
    assert not any(
        loc.startswith('mmreid_usl') for loc in registry.VISUALIZERS._locations)
