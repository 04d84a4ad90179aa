# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Version of mmreid_usl."""

__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Parse a version string like ``'0.1.0rc1'`` into a tuple.

    Args:
        version_str (str): The version string.

    Returns:
        tuple: ``(major, minor, patch[, 'rcN'])``.
    """
    info = []
    for part in version_str.split('.'):
        if part.isdigit():
            info.append(int(part))
        elif 'rc' in part:
            num, rc = part.split('rc')
            info.extend([int(num), f'rc{rc}'])
    return tuple(info)


version_info = parse_version_info(__version__)
