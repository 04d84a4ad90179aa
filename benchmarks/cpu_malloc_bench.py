# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Page faults of CPU training, with glibc's default malloc and tuned.

PyTorch's CPU allocator takes every tensor from ``malloc``; glibc serves
blocks above its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns them with ``munmap`` on free. A training step of the CPU-scale
configs (MobileNetV2, batch 64 x 3 x 192 x 96) allocates activations of
tens of MB, so every step maps, zero-fills and unmaps the same memory again:
millions of page faults per step, a third or more of the process's CPU time
in the kernel, and more on virtual machines whose freed memory goes back to
the host. With ::

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:\
glibc.malloc.trim_threshold=68719476736

malloc never uses ``mmap``, keeps freed memory in its heap (the trim
threshold, 64 GiB, is never reached) and backs it with transparent huge
pages where the kernel allows (``madvise`` mode): the faults stop after the
first steps. The numerics are unchanged (same allocator calls, other
addresses). ``benchmarks/cuhk03_suite.py`` sets it for its jobs.

This script times forward + backward + Adam steps of the encoder of
``--config`` on random images, each variant in a fresh process (the
variable is read when the process starts), and prints per step: wall time,
user and system CPU time and minor page faults; the last line is one JSON
object. Example::

    python benchmarks/cpu_malloc_bench.py --threads 2 --iters 5

Written by hand: no library measures this.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from _bench_utils import peak_rss_gb  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: The tuned setting (see the module docstring).
TUNED = ('glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:'
         'glibc.malloc.trim_threshold=68719476736')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config',
        default=osp.join(REPO, 'configs/cluster_contrast/'
                         'cluster-contrast_mbv2_cuhk03.py'),
        help='its model.encoder is timed')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--height', type=int, default=192)
    parser.add_argument('--width', type=int, default=96)
    parser.add_argument('--iters', type=int, default=5, help='timed steps')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument(
        '--child', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def child(args) -> dict:
    """Time ``args.iters`` training steps in this process."""
    import torch
    from mmengine.config import Config

    from mmreid_usl.registry import MODELS
    from mmreid_usl.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder_cfg = Config.fromfile(args.config).model.encoder
    encoder_cfg.backbone.pop('init_cfg', None)  # speed needs no weights
    encoder = MODELS.build(encoder_cfg).train()
    optim = torch.optim.Adam(encoder.parameters(), lr=3.5e-4)
    images = torch.randn(args.batch, 3, args.height, args.width)

    def step():
        optim.zero_grad()
        out = encoder(images)
        feats = out[-1] if isinstance(out, (tuple, list)) else out
        feats.float().pow(2).mean().backward()
        optim.step()

    step()  # warm-up: first allocations, lazy initialisation
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for _ in range(args.iters):
        step()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    n = args.iters
    return dict(
        glibc_tunables=os.environ.get('GLIBC_TUNABLES', ''),
        wall_per_step_s=round(wall / n, 3),
        user_per_step_s=round((after.ru_utime - before.ru_utime) / n, 3),
        sys_per_step_s=round((after.ru_stime - before.ru_stime) / n, 3),
        minor_faults_per_step=round(
            (after.ru_minflt - before.ru_minflt) / n),
        peak_rss_gb=round(peak_rss_gb(), 2))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    from mmengine.logging import print_log
    rows = []
    for name, tunables in (('glibc default', None), ('tuned', TUNED)):
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        env.pop('GLIBC_TUNABLES', None)
        if tunables:
            env['GLIBC_TUNABLES'] = tunables
        argv_child = list(sys.argv[1:] if argv is None else argv) + [
            '--child'
        ]
        out = subprocess.run([sys.executable, __file__] + argv_child,
                             env=env, check=True, capture_output=True,
                             text=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row['variant'] = name
        rows.append(row)
        print_log(
            f"{name:>13}: {row['wall_per_step_s']:.2f} s/step, user "
            f"{row['user_per_step_s']:.2f} s, sys {row['sys_per_step_s']:.2f} "
            f"s, {row['minor_faults_per_step']:,} minor faults/step, peak "
            f"RSS {row['peak_rss_gb']:.2f} GB",
            logger='current')
    print(
        json.dumps(
            dict(
                batch=args.batch,
                size=[args.height, args.width],
                threads=args.threads,
                iters=args.iters,
                rows=rows)))


if __name__ == '__main__':
    main()
