# Copyright (c) mmreid_usl contributors. All rights reserved.
"""``benchmarks/gpu_pseudo_label_check.sh``: every step is a valid call of
``pseudo_label_bench.py`` and the time limits fit one 9-minute GPU run."""
import json
import os
import os.path as osp
import re
import shlex
import subprocess

from script_loader import REPO, load_script

SCRIPT = osp.join(REPO, 'benchmarks', 'gpu_pseudo_label_check.sh')


def _steps():
    text = open(SCRIPT).read()
    env = dict(re.findall(r'^(\w+)="([^"]*)"$', text, flags=re.M))
    steps = re.findall(r'^step (\S+) (\d+) (.*)$', text, flags=re.M)
    return [(name, int(limit),
             shlex.split(re.sub(r'\$(\w+)', lambda m: env[m.group(1)],
                                args))) for name, limit, args in steps]


def test_steps_parse_and_fit_nine_minutes():
    bench = load_script('benchmarks/pseudo_label_bench.py', '_plb_gpu')
    steps = _steps()
    assert len(steps) == 6
    for name, _, argv in steps:
        args = bench.parse_args(argv)
        assert args.device == 'cuda', name
    assert sum(limit for _, limit, _ in steps) <= 9 * 60 - 30
    assert subprocess.run(['bash', '-n', SCRIPT]).returncode == 0


def test_steps_write_one_json_line_each(tmp_path):
    """The script's plumbing with a stub benchmark: one line per step with
    its name, exit status and the benchmark's last JSON line (or the error
    text when it printed none)."""
    stub = tmp_path / 'stub.sh'
    stub.write_text('case "$*" in *ivf*) echo boom; exit 3;; esac\n'
                    'echo "{\\"total_s\\": 1.5}"\n')
    out = tmp_path / 'out'
    env = dict(os.environ, BENCH=f'bash {stub}')
    subprocess.run(['bash', SCRIPT, str(out)], env=env, check=True,
                   capture_output=True)
    lines = [json.loads(x) for x in
             (out / 'gpu_pseudo_label.jsonl').read_text().splitlines()]
    assert [x['step'] for x in lines] == [name for name, _, _ in _steps()]
    for x in lines:
        if x['step'] == 'ivf_1m':
            assert x['rc'] == 3 and 'boom' in x['error']
        else:
            assert x['rc'] == 0 and x['total_s'] == 1.5
    assert (out / 'gpu.txt').exists()
