# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Run-time shims that let the 2018–2022 reference code run on current
torch and on a CPU, without patching a file on disk.

Everything here is undone when :class:`ReferenceRuntime` exits, and every
shim that was applied is named in the parity report, so a reader knows
exactly where the harness stood between the reference and the machine.
"""
import contextlib
import importlib
import importlib.util
import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn
from torch.func import functional_call


class CPUDataParallel(nn.Module):
    """``nn.DataParallel`` over ``num_replicas`` GPUs, emulated on one device.

    What DataParallel computes, made explicit: the batch is split with
    ``torch.chunk`` (the scatter), every chunk is forwarded by a replica that
    shares the parameters (gradients flow to them) and has its own copy of
    the buffers, and the outputs are concatenated (the gather). The replica
    of the first device uses the module's own buffers, so BatchNorm running
    statistics move with the first chunk only; the other replicas' updates
    are thrown away, as DataParallel throws its replicas away.

    Args:
        module (nn.Module): The network.
        num_replicas (int): GPUs of the official run.
    """

    def __init__(self, module: nn.Module, num_replicas: int = 1) -> None:
        super().__init__()
        self.module = module
        self.num_replicas = num_replicas

    def forward(self, x: torch.Tensor, *args, **kwargs) -> Any:
        chunks = x.chunk(self.num_replicas) if self.num_replicas > 1 else [x]
        outs = [self.module(chunks[0], *args, **kwargs)]
        for chunk in chunks[1:]:
            buffers = {
                k: b.clone()
                for k, b in self.module.named_buffers()
            }
            outs.append(
                functional_call(
                    self.module,
                    buffers, (chunk, ) + args,
                    kwargs,
                    strict=False))
        if isinstance(outs[0], torch.Tensor):
            return torch.cat(outs, dim=0)
        return type(outs[0])(torch.cat(parts, dim=0) for parts in zip(*outs))


def load_module_from_file(name: str, path: str):
    """Import a script of the reference (e.g. its training script) as a
    module without running its ``__main__`` block."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SCRIPTS: Dict[str, Any] = {}


def reference_script(rt, name: str, relpath: str):
    """The reference's training script ``relpath`` (under ``rt.path``) as
    the module ``name``, loaded once (its main block not run)."""
    if name not in _SCRIPTS:
        _SCRIPTS[name] = load_module_from_file(name,
                                               osp.join(rt.path, relpath))
    return _SCRIPTS[name]


def _is_cuda(arg: Any) -> bool:
    if isinstance(arg, torch.device):
        return arg.type == 'cuda'
    return isinstance(arg, str) and arg.startswith('cuda')


class ReferenceRuntime(contextlib.AbstractContextManager):
    """The reference package importable and runnable on ``device``.

    Args:
        path (str): Root of the user's clone (holds the package, e.g.
            ``clustercontrast/`` or ``ice/``).
        package (str): Top-level package name of the reference.
        device (str): ``'cpu'`` or ``'cuda'``.
        num_replicas (int): GPUs of the official run (DataParallel).
        dtype (torch.dtype): ``torch.float64`` makes every ``.cuda()`` of
            the reference also cast floating tensors and modules to float64
            (the exactness check of the steps level); float32 leaves the
            dtypes alone.
    """

    def __init__(self,
                 path: str,
                 package: str,
                 device: str = 'cpu',
                 num_replicas: int = 4,
                 dtype: torch.dtype = torch.float32) -> None:
        if not osp.isdir(osp.join(path, package)):
            raise FileNotFoundError(
                f'{path!r} does not hold the reference package {package!r} '
                f'(expected {osp.join(path, package)}/): give the root of '
                'your clone of the reference repository to --reference.')
        self.path = osp.abspath(path)
        self.package = package
        self.device = torch.device(device)
        self.num_replicas = num_replicas
        self.dtype = dtype
        self.applied: List[str] = []
        self._undo: List[Callable[[], None]] = []

    # ------------------------------------------------------------------
    def patch(self, owner: Any, name: str, value: Any, why: str) -> None:
        """Set ``owner.name = value`` until exit and record ``why``."""
        missing = object()
        old = getattr(owner, name, missing)
        setattr(owner, name, value)

        def undo():
            if old is missing:
                delattr(owner, name)
            else:
                setattr(owner, name, old)

        self._undo.append(undo)
        if why not in self.applied:
            self.applied.append(why)

    def __enter__(self) -> 'ReferenceRuntime':
        # the reference's own top-level package must win over anything of
        # the same name (DCMIP's is also called `clustercontrast`)
        for mod in [m for m in sys.modules
                    if m == self.package or m.startswith(self.package + '.')]:
            del sys.modules[mod]
        sys.path.insert(0, self.path)
        self._undo.append(lambda: sys.path.remove(self.path))
        self._torch_shims()
        return self

    def __exit__(self, *exc) -> None:
        while self._undo:
            self._undo.pop()()
        return None

    def patch_item(self, mapping: dict, key: str, value: Any,
                   why: str) -> None:
        """Set ``mapping[key] = value`` (absent before) until exit."""
        if key in mapping:
            raise KeyError(f'{key!r} exists; patch_item only adds')
        mapping[key] = value
        self._undo.append(lambda: mapping.pop(key, None))
        if why not in self.applied:
            self.applied.append(why)

    @contextlib.contextmanager
    def scoped(self):
        """Patches made inside the block are undone at its end."""
        mark = len(self._undo)
        try:
            yield self
        finally:
            while len(self._undo) > mark:
                self._undo.pop()()

    def import_module(self, name: str):
        """Import ``name`` from the reference."""
        return importlib.import_module(name)

    # ------------------------------------------------------------------
    def _torch_shims(self) -> None:
        device = self.device
        self.cuda_shims()
        if device.type != 'cuda':
            to = torch.Tensor.to

            def tensor_to(t, *args, **kwargs):
                args = tuple(device if _is_cuda(a) else a for a in args)
                if _is_cuda(kwargs.get('device')):
                    kwargs['device'] = device
                return to(t, *args, **kwargs)

            self.patch(torch.Tensor, 'to', tensor_to,
                       "`.to(torch.device('cuda'))` -> the harness device")
        num = self.num_replicas

        class DataParallel(CPUDataParallel):
            """``nn.DataParallel(module, ...)`` of the reference scripts."""

            def __init__(self, module, *args, **kwargs):
                super().__init__(module, num)

        self.patch(
            nn, 'DataParallel', DataParallel,
            f'`nn.DataParallel` -> {num} replicas emulated on one device '
            '(chunked batch, parameters shared, buffers of the first '
            'replica kept)')
        addmm_ = torch.Tensor.addmm_

        def addmm_compat(t, *args, **kwargs):
            # torch < 1.5 signature addmm_(beta, alpha, mat1, mat2)
            if len(args) == 4 and not isinstance(args[0], torch.Tensor):
                beta, alpha, m1, m2 = args
                return addmm_(t, m1, m2, beta=beta, alpha=alpha)
            return addmm_(t, *args, **kwargs)

        self.patch(torch.Tensor, 'addmm_', addmm_compat,
                   '`Tensor.addmm_(beta, alpha, m1, m2)` (removed '
                   'signature) -> `addmm_(m1, m2, beta=, alpha=)`')

    def cuda_shims(self, dtype: torch.dtype = None) -> None:
        """``.cuda()`` -> the harness device (and ``dtype`` for floating
        tensors and modules when it is float64)."""
        device = self.device
        dtype = dtype or self.dtype
        wide = dtype == torch.float64

        def tensor_cuda(t, *a, **k):
            if wide and t.is_floating_point():
                return t.to(device, dtype)
            return t.to(device)

        def module_cuda(m, *a, **k):
            return m.to(device, dtype) if wide else m.to(device)

        why = '`.cuda()` of tensors and modules -> the harness device'
        if wide:
            why += ' (and float64 for the exactness check)'
        self.patch(torch.Tensor, 'cuda', tensor_cuda, why)
        self.patch(nn.Module, 'cuda', module_cuda, why)

    def torchvision_without_download(self, resnet_module: Any) -> None:
        """``torchvision.models.resnetXX(pretrained=...)`` builds the
        architecture only: no download, and the ``pretrained`` argument
        that current torchvision removed is dropped. The weights are then
        copied from our model through the explicit key map."""
        import torchvision
        factory: Dict[int, Callable] = resnet_module.ResNet.__dict__[
            '_ResNet__factory']
        for depth, fn in list(factory.items()):
            name = fn.__name__
            real = getattr(torchvision.models, name)

            def build(*args, _real=real, **kwargs):
                kwargs.pop('pretrained', None)
                return _real(weights=None)

            factory[depth] = build

            def restore(_d=depth, _fn=fn):
                factory[_d] = _fn

            self._undo.append(restore)
        why = ('`torchvision.models.resnetXX(pretrained=True)` -> the '
               'architecture without download; weights copied from ours '
               'through the checked key map')
        if why not in self.applied:
            self.applied.append(why)


def reference_commit(path: str) -> Optional[str]:
    """The commit of the user's clone, when it is a git checkout."""
    import subprocess
    try:
        out = subprocess.run(['git', '-C', path, 'rev-parse', 'HEAD'],
                             capture_output=True,
                             text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None
