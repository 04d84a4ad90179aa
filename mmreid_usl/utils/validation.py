# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Argument checks for constructors, so bad configs fail when built.

Hand-written: the checks are two lines each, but every error must name the
owner, the argument, the allowed range and the value received.
"""
import numbers
from typing import Optional, Sequence


def check_choice(name: str,
                 value: object,
                 choices: Sequence,
                 owner: Optional[str] = None) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``.

    Args:
        name (str): Argument name.
        value: The value to check.
        choices (Sequence): The allowed values.
        owner (str, optional): Class name that starts the message, e.g.
            ``'InfomapClusterer: knn_backend must be one of ...'``.
    """
    if value not in choices:
        prefix = f'{owner}: ' if owner else ''
        raise ValueError(f'{prefix}{name} must be one of {choices}, got '
                         f'{value!r}' + ('.' if owner else ''))


def check_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is an int >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, got {value!r}')


def check_optional_positive_int(name: str, value: object) -> None:
    """Raise ``ValueError`` unless ``value`` is None or an int >= 1 (not a
    bool)."""
    if value is not None and (not isinstance(value, int)
                              or isinstance(value, bool) or value < 1):
        raise ValueError(f'{name} must be None or a positive int, got '
                         f'{value!r}')


def check_int(owner: str,
              name: str,
              value: object,
              low: Optional[int] = None,
              high: Optional[int] = None,
              why: str = '') -> int:
    """Return ``value`` if it is an int (not a bool) in ``[low, high]``.

    Args:
        owner (str): Class name shown in the error, e.g.
            ``'DBSCANClusterer'``.
        name (str): Argument name.
        value: The value to check.
        low (int, optional): Inclusive lower bound.
        high (int, optional): Inclusive upper bound.
        why (str): Appended to the message (what the bound means).

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value`` is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{owner}: {name} must be an int, got {value!r} '
                        f'({type(value).__name__}).')
    if (low is not None and value < low) or (high is not None
                                             and value > high):
        bounds = _bounds(low, high, True, True)
        raise ValueError(f'{owner}: {name} must be {bounds}, got {value}.'
                         + (f' {why}' if why else ''))
    return int(value)


def check_real(owner: str,
               name: str,
               value: object,
               low: Optional[float] = None,
               high: Optional[float] = None,
               low_inclusive: bool = True,
               high_inclusive: bool = True,
               why: str = '') -> float:
    """Return ``float(value)`` if it is a real number in the given range.

    Args:
        owner (str): Class name shown in the error.
        name (str): Argument name.
        value: The value to check (bools and strings are rejected).
        low, high (float, optional): Bounds.
        low_inclusive, high_inclusive (bool): Whether the bounds belong to
            the range. Default True.
        why (str): Appended to the message (what the bound means).

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is NaN or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{owner}: {name} must be a number, got {value!r} '
                        f'({type(value).__name__}).')
    value = float(value)
    bad = value != value  # NaN
    if low is not None:
        bad |= value < low if low_inclusive else value <= low
    if high is not None:
        bad |= value > high if high_inclusive else value >= high
    if bad:
        bounds = _bounds(low, high, low_inclusive, high_inclusive)
        raise ValueError(f'{owner}: {name} must be {bounds}, got {value}.' +
                         (f' {why}' if why else ''))
    return value


def _bounds(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    if low is not None and high is not None:
        return ('in ' + ('[' if low_inclusive else '(') + f'{low}, {high}' +
                (']' if high_inclusive else ')'))
    if low is not None:
        return ('>= ' if low_inclusive else '> ') + str(low)
    return ('<= ' if high_inclusive else '< ') + str(high)
