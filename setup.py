# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Installation of mmreid_usl: ``pip install -e .`` or ``pip install -e .[tests]``."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version() -> str:
    """Read ``__version__`` from ``mmreid_usl/version.py`` without importing it."""
    with open(osp.join(HERE, 'mmreid_usl', 'version.py'), encoding='utf-8') as f:
        match = re.search(r"^__version__ = '([^']+)'", f.read(), re.M)
    if match is None:
        raise RuntimeError('cannot find __version__ in mmreid_usl/version.py')
    return match.group(1)


def parse_requirements(fname: str) -> list:
    """Parse a requirements file, following ``-r other.txt`` lines.

    Args:
        fname (str): Path relative to the repository root.

    Returns:
        list[str]: Requirement specifiers, comments and blank lines removed.
    """
    reqs = []
    with open(osp.join(HERE, fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(
                    osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                reqs.append(line)
    return reqs


with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='mmreid_usl',
    version=get_version(),
    description='OpenMMLab-style toolbox for unsupervised person '
    're-identification (Cluster Contrast, ICE, DCMIP, GDS)',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'benchmarks')),
    include_package_data=True,
    python_requires='>=3.8',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'optional': parse_requirements('requirements/optional.txt'),
        'all': parse_requirements('requirements/runtime.txt') +
        parse_requirements('requirements/tests.txt'),
    },
    zip_safe=False,
    # `pip install -e .` puts the repository root on sys.path (a .pth path
    # entry) instead of setuptools' default import hook, which runs after
    # Python's own path search: with the hook, a script saved in the folder
    # that contains a clone named `mmreid_usl` imported the clone's folder as
    # an empty namespace package (`module 'mmreid_usl' has no attribute
    # '__version__'`). A regular package on sys.path wins over such a folder.
    options={'editable_wheel': {'mode': 'compat'}})
