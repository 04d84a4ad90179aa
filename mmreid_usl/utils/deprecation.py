# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Renamed arguments and config keys: the old name keeps working, with a
warning.

A renamed argument takes the marker :data:`UNSET` as the default of its old
name; :func:`renamed_argument` then returns the value to use and warns
(:class:`DeprecatedNameWarning`, a ``FutureWarning``, so it is shown by
default) when the old name was given. Giving both names is an error.
:func:`renamed_kwargs` does it for a function's keyword arguments (a
decorator), :func:`renamed_keys` for the keys of a dict argument and
:func:`renamed_attribute` for an attribute and
:class:`DeprecatedFlagAction` for a command-line flag.
"""
import argparse
import functools
import inspect
import warnings
from typing import Any, Callable, Dict, Mapping, Optional

#: Default of a deprecated argument: "not given".
UNSET: Any = type('Unset', (), {'__repr__': lambda self: 'UNSET'})()


class DeprecatedNameWarning(FutureWarning):
    """An argument or config key was given under its deprecated name."""


def renamed_argument(owner: str,
                     old: str,
                     new: str,
                     old_value: Any,
                     new_value: Any,
                     new_default: Any = UNSET,
                     stacklevel: int = 3) -> Any:
    """The value of an argument renamed from ``old`` to ``new``.

    Args:
        owner (str): Who takes the argument (for messages), e.g.
            ``'GDSLoss'``.
        old (str): The deprecated name.
        new (str): The current name.
        old_value: The value given under ``old`` (:data:`UNSET`: not given).
        new_value: The value given under ``new`` (its default if not given).
        new_default: The default of ``new``: with ``old`` given, a
            ``new_value`` other than this default means both were given.
            :data:`UNSET` when ``new`` itself defaults to :data:`UNSET`.
        stacklevel (int): Passed to :func:`warnings.warn`.

    Returns:
        ``old_value`` if it was given, else ``new_value``.

    Raises:
        TypeError: Both names were given.
    """
    if old_value is UNSET:
        return new_value
    if new_value is not UNSET and not _same(new_value, new_default):
        raise TypeError(f'{owner}: got both `{new}` and its deprecated name '
                        f'`{old}`; give `{new}` only.')
    warnings.warn(
        f'{owner}: `{old}` is deprecated, use `{new}` (same value and '
        'meaning; the old name will be removed).',
        DeprecatedNameWarning,
        stacklevel=stacklevel)
    return old_value


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors
        return a is b


def renamed_kwargs(**renames: str) -> Callable:
    """Decorator: a function also takes each keyword ``old=new`` under its
    deprecated name ``old``.

    The old name is passed on as the new one with a
    :class:`DeprecatedNameWarning` (:func:`renamed_argument`, whose
    ``new_default`` is the new argument's default in the function's
    signature: an old name given next to the new one at its default, e.g.
    ``--cfg-options model.cluster_feat_source=momentum`` on a config that
    sets ``cluster_encoder`` to the default, wins). The signature shows the
    old names as keyword-only arguments defaulting to :data:`UNSET`, so a
    component built from a config (``build_module``, which checks the keys
    against the signature) accepts them. The owner in the messages is the
    class of ``self`` for ``__init__``, else the function's qualified name.

    Example:
        >>> @renamed_kwargs(feat_source='encoder')
        ... def f(encoder='student'):
        ...     return encoder
    """

    def wrap(func: Callable) -> Callable:
        sig = inspect.signature(func)
        defaults = {
            name: p.default
            for name, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty
        }

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            old_given = [old for old in renames if old in kwargs]
            if old_given:
                owner = type(args[0]).__name__ if (
                    func.__name__ == '__init__' and args) else \
                    func.__qualname__
                for old in old_given:
                    new = renames[old]
                    kwargs[new] = renamed_argument(
                        owner, old, new, kwargs.pop(old),
                        kwargs.get(new, UNSET), defaults.get(new, UNSET),
                        stacklevel=3)
            return func(*args, **kwargs)

        params = list(sig.parameters.values())
        var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
        params = [p for p in params if p.kind is not p.VAR_KEYWORD] + [
            inspect.Parameter(old, inspect.Parameter.KEYWORD_ONLY,
                              default=UNSET) for old in renames
        ] + var_kw
        wrapper.__signature__ = sig.replace(parameters=params)
        return wrapper

    return wrap


def renamed_keys(owner: str, cfg: Optional[Mapping],
                 renames: Dict[str, str],
                 defaults: Optional[Mapping] = None,
                 stacklevel: int = 3) -> Optional[dict]:
    """A copy of the dict ``cfg`` with each deprecated key ``old`` of
    ``renames`` (``{old: new}``) under its new name, with a warning
    (:func:`renamed_argument`; ``defaults`` holds the new keys' defaults).

    Args:
        owner (str): Whose dict it is, for messages, e.g.
            ``'ICE.test_cfg'``.
        cfg (Mapping, optional): The dict (None is returned as is).
        renames (dict[str, str]): ``{old: new}``.
        defaults (Mapping, optional): Default value of each new key.
        stacklevel (int): Passed to :func:`warnings.warn`.
    """
    if cfg is None:
        return None
    out = dict(cfg)
    for old, new in renames.items():
        if old in out:
            out[new] = renamed_argument(owner, old, new, out.pop(old),
                                        out.get(new, UNSET),
                                        (defaults or {}).get(new, UNSET),
                                        stacklevel + 1)
    return out


def renamed_attribute(old: str, new: str) -> property:
    """A class attribute ``old`` that reads and writes ``new`` with a
    :class:`DeprecatedNameWarning`: ``feat_source = renamed_attribute(
    'feat_source', 'encoder')`` in the class body."""

    def warn(obj: Any) -> None:
        warnings.warn(
            f'{type(obj).__name__}: `{old}` is deprecated, use `{new}` '
            '(same value and meaning; the old name will be removed).',
            DeprecatedNameWarning,
            stacklevel=3)

    def fget(self):
        warn(self)
        return getattr(self, new)

    def fset(self, value):
        warn(self)
        setattr(self, new, value)

    return property(fget, fset, doc=f'Deprecated name of ``{new}``.')


class DeprecatedFlagAction(argparse.Action):
    """``store`` for a flag with a deprecated spelling, which warns.

    ``parser.add_argument('--encoder', '--feat-source', action=
    DeprecatedFlagAction, deprecated=['--feat-source'])`` stores both under
    ``encoder``; the deprecated option strings give a
    :class:`DeprecatedNameWarning` naming the current one.
    """

    def __init__(self, option_strings, dest, deprecated=(), **kwargs):
        self.deprecated = tuple(deprecated)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated:
            new = next(s for s in self.option_strings
                       if s not in self.deprecated)
            warnings.warn(
                f'{parser.prog}: `{option_string}` is deprecated, use '
                f'`{new}` (same values and meaning; the old flag will be '
                'removed).',
                DeprecatedNameWarning,
                stacklevel=2)
        setattr(namespace, self.dest, values)
