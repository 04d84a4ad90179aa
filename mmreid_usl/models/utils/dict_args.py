# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Dict-typed arguments of the algorithms: unknown keys are errors.

An algorithm reads keys of ``test_cfg`` with ``dict.get`` and passes loss
and memory dicts to the registry, so a misspelt key was either ignored
(``--cfg-options model.test_cfg.source=momentum`` tested the student, rc 0)
or failed with a bare ``TypeError`` that neither named the argument nor the
keys that exist. :func:`check_dict_keys` rejects unknown keys naming the
accepted ones (and the closest match); :func:`build_checked` does it for a
component config against the signature of the class it builds.
"""
import difflib
import inspect
from typing import Iterable, Optional, Set, Union

import torch.nn as nn

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


def build_checked(owner: str, name: str,
                  cfg: Optional[Union[dict, nn.Module]]
                  ) -> Optional[nn.Module]:
    """``MODELS.build(cfg)`` after checking ``cfg``'s keys.

    Args:
        owner (str): The algorithm, e.g. ``'ClusterContrast'``.
        name (str): Its argument, e.g. ``'loss_cluster'`` or ``'memory'``.
        cfg (dict | nn.Module, optional): A config (built) or a module /
            None (returned as is).

    Raises:
        ValueError: ``cfg`` has keys the class does not accept (named with
            the accepted ones).
    """
    if not isinstance(cfg, dict):
        return cfg
    kind = cfg.get('type')
    cls = kind if inspect.isclass(kind) else (
        MODELS.get(kind) if isinstance(kind, str) else None)
    if cls is not None:
        keys = accepted_init_keys(cls)
        if keys is not None:
            check_dict_keys(f'{owner}', f'{name} ({cls.__name__})', cfg,
                            keys | {'type'})
    return MODELS.build(cfg)
