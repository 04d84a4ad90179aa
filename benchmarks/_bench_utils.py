# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Helpers shared by the benchmark scripts (peak RSS, repeats in fresh
processes, medians)."""
import json
import os
import resource
import statistics
import subprocess
import sys
from typing import Dict, List


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux: KiB -> GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def run_repeats(script: str, argv: List[str], repeat: int) -> Dict:
    """Run ``script argv`` ``repeat`` times, each in a fresh process (so
    every peak RSS is per run), and return the per-key medians of the JSON
    objects they print last, plus the raw runs."""
    runs = []
    for r in range(repeat):
        out = subprocess.run([sys.executable, script] + argv,
                             check=True, capture_output=True, text=True,
                             env=dict(os.environ))
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        sys.stderr.write(f'run {r + 1}/{repeat}: {runs[-1]}\n')
    med = {}
    for key, val in runs[0].items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            med[key] = statistics.median(run[key] for run in runs)
        else:
            med[key] = val
    med['repeats'] = repeat
    med['runs'] = runs
    return med


def load_average() -> float:
    """1-minute load average (the benchmark machine is shared)."""
    return os.getloadavg()[0]
