# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Helpers shared by the benchmark scripts (peak RSS, repeats in fresh
processes, medians, the synthetic query/gallery options)."""
import json
import os
import resource
import statistics
import subprocess
import sys
from typing import Dict, List, Optional, Tuple


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


def repeat_in_children(script: str, argv: Optional[List[str]],
                       repeat: int) -> bool:
    """With ``repeat > 1``, run ``script`` that many times without its
    ``--repeat`` option (:func:`run_repeats`), print the medians and return
    True; otherwise return False (the caller runs once itself)."""
    if repeat <= 1:
        return False
    argv = sys.argv[1:] if argv is None else argv
    child = [a for i, a in enumerate(argv)
             if a != '--repeat' and (i == 0 or argv[i - 1] != '--repeat')
             and not a.startswith('--repeat=')]
    print(json.dumps(run_repeats(os.path.abspath(script), child, repeat)))
    return True


def add_gallery_args(parser) -> None:
    """The options of a synthetic query/gallery split
    (:func:`synthetic_features`): sizes, identities, cameras, dimension,
    noise."""
    parser.add_argument('--nq', type=int, required=True, help='queries')
    parser.add_argument('--ng', type=int, required=True, help='gallery')
    parser.add_argument('--ids', type=int, default=751)
    parser.add_argument('--cams', type=int, default=6)
    parser.add_argument('--dim', type=int, default=2048)
    parser.add_argument('--noise', type=float, default=3.5)


def query_gallery(args) -> Tuple:
    """Synthetic features of ``args.nq + args.ng`` images, split into
    ``(qf, gf, q_pids, g_pids, q_cams, g_cams)`` (the features as torch
    views, no copy)."""
    import torch
    from synthetic_features import synthetic_features
    feats, pids, cams = synthetic_features(
        args.nq + args.ng, args.ids, dim=args.dim, num_cams=args.cams,
        noise_norm=args.noise, seed=args.seed)
    feats = torch.from_numpy(feats)
    n = args.nq
    return (feats[:n], feats[n:], pids[:n], pids[n:], cams[:n], cams[n:])


def load_average() -> float:
    """1-minute load average (the benchmark machine is shared)."""
    return os.getloadavg()[0]
