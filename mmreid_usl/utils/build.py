# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Build a component from its config: the one helper of the package.

Components take either a config dict or a built object (a module, a
distance...); :func:`build_module` builds the first with a registry and
passes the second through. Dict-typed arguments reject unknown keys:
:func:`check_dict_keys` names them with the accepted ones (and the closest
match), and :func:`build_module` does it for a component config against the
signature of the class it builds when told whose argument it is (an
algorithm reads keys of ``test_cfg`` with ``dict.get`` and passes loss and
memory dicts to the registry, so a misspelt key was either ignored or failed
with a bare ``TypeError`` that named neither the argument nor the keys that
exist).
"""
import difflib
import inspect
from typing import Any, Iterable, Optional, Set

import torch.nn as nn
from mmengine.registry import Registry

from mmreid_usl.registry import MODELS


def check_dict_keys(owner: str, name: str, value: Optional[dict],
                    accepted: Iterable[str]) -> None:
    """Raise if ``value`` has keys outside ``accepted``.

    Args:
        owner (str): The class whose argument it is, e.g.
            ``'ClusterContrast'``.
        name (str): The argument, e.g. ``'test_cfg'``.
        value (dict, optional): The argument's value (None: nothing to
            check).
        accepted (Iterable[str]): The keys it may hold.

    Raises:
        ValueError: An unknown key; the message names it, the closest
            accepted key and all accepted keys.
    """
    if not isinstance(value, dict):
        return
    accepted = sorted(set(accepted))
    unknown = [str(k) for k in value if k not in accepted]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.5)
        if close:
            hints.append(f"'{key}' -> '{close[0]}'?")
    hint = f" Did you mean {', '.join(hints)}" if hints else ''
    raise ValueError(
        f'{owner}: {name} has the unknown key(s) {unknown}, which nothing '
        f'reads; accepted keys: {accepted}.{hint}')


def accepted_init_keys(cls: type) -> Optional[Set[str]]:
    """Keyword arguments ``cls(...)`` accepts, or None if it takes any.

    Follows ``**kwargs`` that are passed on to a base class's ``__init__``
    (the arguments of every ``__init__`` up the MRO until one without
    ``**kwargs``). Returns None when the chain ends in ``**kwargs`` of a
    class outside this package (nothing can be said).
    """
    keys: Set[str] = set()
    for klass in cls.__mro__:
        if '__init__' not in vars(klass):
            continue
        try:
            params = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):  # builtins
            return None
        var_keyword = False
        for param in params:
            if param.kind is param.VAR_KEYWORD:
                var_keyword = True
            elif param.kind in (param.POSITIONAL_OR_KEYWORD,
                                param.KEYWORD_ONLY) and param.name != 'self':
                keys.add(param.name)
        if not var_keyword:
            return keys
        if klass in (nn.Module, object):
            return None
    return None


def build_module(cfg: Any,
                 registry: Registry = MODELS,
                 owner: Optional[str] = None,
                 name: Optional[str] = None) -> Any:
    """Build ``cfg`` with ``registry`` when it is a config dict.

    Anything else (a built module or object, None) is returned as is. With
    ``owner`` the config's keys are first checked against the ``__init__``
    of the class it names (:func:`accepted_init_keys`; classes that take any
    ``**kwargs`` are not checked).

    Args:
        cfg (dict | Any): A config with ``type``, or a built object / None.
        registry (Registry): The registry to build with. Defaults to
            ``MODELS``.
        owner (str, optional): Whose argument ``cfg`` is, e.g.
            ``'ClusterContrast'``; checks the keys when given.
        name (str, optional): The argument, e.g. ``'loss_cluster'``.

    Returns:
        Any: The built object, or ``cfg`` itself.

    Raises:
        ValueError: (with ``owner``) ``cfg`` has keys the class does not
            accept (named with the accepted ones).
    """
    if not isinstance(cfg, dict):
        return cfg
    if owner is not None:
        kind = cfg.get('type')
        cls = kind if inspect.isclass(kind) else (
            registry.get(kind) if isinstance(kind, str) else None)
        if cls is not None:
            keys = accepted_init_keys(cls)
            if keys is not None:
                check_dict_keys(owner, f'{name} ({cls.__name__})', cfg,
                                keys | {'type'})
    return registry.build(cfg)


__all__ = ['accepted_init_keys', 'build_module', 'check_dict_keys']
