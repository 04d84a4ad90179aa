# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Import a script of the repository (``benchmarks/``, ``tools/``) by its
path, as a module the tests can call."""
import importlib.util
import os.path as osp
import types

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_script(path: str, name: str) -> types.ModuleType:
    """The module of ``REPO/path`` under the name ``name``."""
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
