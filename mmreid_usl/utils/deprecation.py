# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Renamed arguments and config keys: the old name keeps working, with a
warning.

A renamed argument takes the marker :data:`UNSET` as the default of its old
name; :func:`renamed_argument` then returns the value to use and warns
(:class:`DeprecatedNameWarning`, a ``FutureWarning``, so it is shown by
default) when the old name was given. Giving both names is an error.
"""
import warnings
from typing import Any

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
