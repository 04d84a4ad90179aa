# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``pip install -e .`` survives a clone named like the package (issue 24,
case 11): a script saved next to the clone imported the clone's folder as an
empty namespace package."""
import os
import os.path as osp
import shutil
import site
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

SCRIPT = ('import mmreid_usl\n'
          'print(mmreid_usl.__file__, mmreid_usl.__version__)\n')


@pytest.mark.slow
def test_a_script_next_to_the_clone_imports_the_package(tmp_path):
    clone = tmp_path / 'mmreid_usl'  # the clone, named like the package
    clone.mkdir()
    for name in ('setup.py', 'README.md'):
        shutil.copy(osp.join(REPO, name), clone / name)
    for name in ('requirements', 'mmreid_usl'):
        shutil.copytree(
            osp.join(REPO, name),
            clone / name,
            ignore=shutil.ignore_patterns('__pycache__'))
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(venv)],
                   check=True)
    python = str(venv / 'bin' / 'python')
    # the new environment sees this one's packages (torch, mmengine, pip,
    # setuptools) through a path file: path files inside those folders are
    # not processed, so this environment's own editable install of the
    # repository does not leak in
    purelib = subprocess.run(
        [python, '-c', 'import sysconfig; print(sysconfig.get_paths()'
         '["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()
    outer = [p for p in site.getsitepackages() if osp.isdir(p)]
    with open(osp.join(purelib, 'outer_env.pth'), 'w') as f:
        f.write('\n'.join(outer) + '\n')
    env = dict(os.environ, PIP_NO_INDEX='1', PYTHONPATH='')
    probe = subprocess.run([python, '-c', 'import pip, setuptools, mmengine'],
                           capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        pytest.skip('this environment has no pip / setuptools / mmengine '
                    'to lend to a fresh one: ' + probe.stderr[-300:])
    proc = subprocess.run([
        python, '-m', 'pip', 'install', '-q', '--no-deps',
        '--no-build-isolation', '-e',
        str(clone)
    ],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (tmp_path / 'script.py').write_text(SCRIPT)
    proc = subprocess.run([python, 'script.py'],
                          cwd=str(tmp_path),
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(
        str(clone / 'mmreid_usl' / '__init__.py')), proc.stdout
