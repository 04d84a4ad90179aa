# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Parity of mmreid_usl with a reference implementation: same weights, same
images, every intermediate quantity compared.

Usage::

    python benchmarks/parity/run.py cluster_contrast --reference PATH \
        [--data data/cuhk03_detected] [--device cpu] [--out parity_cc.json]
    python benchmarks/parity/run.py ice --reference PATH
    python benchmarks/parity/run.py theory --reference PATH
    python benchmarks/parity/run.py dcmip --reference PATH

``PATH`` is the root of your own clone of the reference repository
(nothing of it is copied; it is imported from there, with the run-time
shims the report lists). Levels (``--levels``):

- ``components``: identical inputs through each component (pipeline,
  encoder in train and eval mode, memories, losses and their gradients,
  Jaccard distance and DBSCAN labels, mAP / CMC);
- ``steps``: the same weights and batches through N optimiser steps;
- ``run``: two re-clusterings with a few iterations each on a subset of
  real images, the reference driven by its own training script (at half
  the resolution by default, ``--run-scale``);
- ``timing``: seconds per training iteration, ours vs the reference (not
  run by default: ``--levels timing``).

Prints one table per level and writes the JSON report (``--out``), whose
top-level ``"pass"`` is true when every compared quantity is within its
tolerance. Exit status 0 when it passes, 1 otherwise. Figures and the
meaning of every tolerance: docs/parity.md.
"""
import argparse
import importlib
import os
import os.path as osp
import sys
import time

HERE = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(osp.dirname(HERE))
sys.path.insert(0, osp.dirname(HERE))  # benchmarks/, for `parity`
os.chdir(REPO)  # config paths are relative to the repository

METHODS = {
    'cluster_contrast': ('parity.cluster_contrast', 'clustercontrast'),
    'ice': ('parity.ice', 'ice'),
    'theory': ('parity.theory', 'reid'),
    'dcmip': ('parity.dcmip', 'clustercontrast'),
}
COMPARED_LEVELS = ('components', 'steps', 'run')
ALL_LEVELS = COMPARED_LEVELS + ('timing', )
#: --run-images other than 500: ICE forwards three views of every image.
RUN_IMAGES = {'ice': 300}
#: --step-scale other than 1 (ICE: three views of 32 images in float64).
STEP_SCALE = {'ice': 0.5, 'dcmip': 0.5}
#: --run-test other than --num-test (DCMIP: the reference evaluates four
#: times in its run, each a float64 extraction of the test images).
RUN_TEST = {'dcmip': 100}
#: Methods whose short run measures its rounding floor by default
#: (--run-floor): DCMIP's two-stage trajectory amplifies float64 rounding
#: past the 1e-8 tolerance (docs/parity.md).
RUN_FLOOR = {'dcmip'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('method', choices=sorted(METHODS))
    parser.add_argument(
        '--reference',
        required=True,
        help='root of your clone of the reference repository')
    parser.add_argument(
        '--data',
        default='data/cuhk03_detected',
        help='Market-layout dataset the real-image subset is taken from')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--out', help='JSON report path')
    parser.add_argument(
        '--levels',
        nargs='+',
        default=list(COMPARED_LEVELS),
        choices=ALL_LEVELS,
        help='levels to run (default: the three compared levels; the '
        '``timing`` row is asked for by name)')
    parser.add_argument('--work-dir', help='scratch folder (default: tmp)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=500,
                        help='training images of the subset')
    parser.add_argument('--num-test', type=int, default=200,
                        help='query + gallery images of the subset')
    parser.add_argument(
        '--eps',
        type=float,
        default=0.45,
        help='DBSCAN eps on the subset (random-weight features of 500 '
        'images: 0.45 gives ~17 clusters)')
    parser.add_argument(
        '--rho',
        type=float,
        default=0.02,
        help='Theory: the rho of the eps estimate in the steps and run '
        'levels (Theory: 1.6e-3, used by the components level; the '
        'random-weight features of the subset give 2 clusters with it, 19 '
        'with 0.02; 22 in the short run at half resolution)')
    parser.add_argument('--component-batch', type=int, default=32,
                        help='images of the component comparisons')
    parser.add_argument('--steps', type=int, default=3,
                        help='optimiser steps of the steps level')
    parser.add_argument('--step-batch', type=int, default=32)
    parser.add_argument(
        '--step-scale',
        type=float,
        default=None,
        help="the steps level's images at this fraction of the method's "
        'resolution (ICE and DCMIP: 0.5 by default, three views of every '
        'image, resp. 320x128 images, in float64; the other methods: 1; '
        'the labels of the steps always come from full-resolution '
        'features)')
    parser.add_argument(
        '--step-precision',
        default='fp64',
        choices=['fp64', 'fp32'],
        help='precision of both sides in the steps level: fp64 (default) '
        'checks that the same function is computed (tolerances 1e-10 / '
        '1e-8); fp32 shows the float32 noise floor')
    parser.add_argument(
        '--step-tol',
        type=float,
        default=1e-3,
        help='relative tolerance of the short run (float32, quantities '
        'accumulated over the iterations)')
    parser.add_argument('--run-iters', type=int, default=3,
                        help='iterations per epoch of the short run')
    parser.add_argument(
        '--run-images',
        type=int,
        default=None,
        help='training images of the short run (default 500; ICE 300: it '
        'trains three views of every image; Theory: of the target and of '
        'the source bank each)')
    parser.add_argument(
        '--run-scale',
        type=float,
        default=0.5,
        help="the short run's images at this fraction of the method's "
        'resolution (256x128; DCMIP 320x128) on both sides: the run level '
        'checks the training loop, which does not depend on it, and float64 '
        'convolutions cost ~4x less at half the height and width; the '
        'components and steps levels keep the full resolution. 1 = the '
        "method's own")
    parser.add_argument(
        '--run-eps',
        type=float,
        default=0.4,
        help='DBSCAN eps of the short run (random-weight features of its '
        '500 images at half resolution: 0.4 gives 16-18 clusters for '
        'Cluster Contrast, ICE and DCMIP)')
    parser.add_argument(
        '--run-test',
        type=int,
        default=None,
        help='query + gallery images of the short run (default '
        '--num-test; DCMIP 100)')
    parser.add_argument(
        '--run-floor',
        action=argparse.BooleanOptionalAction,
        default=None,
        help='also train ours a second time from the initial weights times '
        '(1 + 1e-15 e), e ~ N(0, 1), in float64, and judge the run rows of '
        'the trained encoders against max(tolerance, 10 x that rounding '
        'floor) (default: on for DCMIP only; costs one more training of '
        'ours)')
    parser.add_argument('--run-batch', type=int, default=16,
                        help='batch (P x 4) of the short run')
    parser.add_argument(
        '--run-precision',
        default='fp64',
        choices=['fp64', 'fp32'],
        help='precision of the models in the short run (clustering on '
        'float32 features either way); fp32 shows how far float32 rounding '
        'amplified by Adam moves the second clustering')
    parser.add_argument('--timing-batch', type=int, default=None,
                        help='batch of the timing row (default: the '
                        "method's paper batch, capped to fit memory)")
    parser.add_argument('--timing-iters', type=int, default=2)
    args = parser.parse_args(argv)
    if args.run_images is None:
        args.run_images = RUN_IMAGES.get(args.method, 500)
    if args.step_scale is None:
        args.step_scale = STEP_SCALE.get(args.method, 1.0)
    if args.run_test is None:
        args.run_test = RUN_TEST.get(args.method, args.num_test)
    if args.run_floor is None:
        args.run_floor = args.method in RUN_FLOOR
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.reference):
        sys.exit(f'--reference {args.reference!r} is not a folder: give the '
                 'root of your clone of the reference repository.')
    if not osp.isdir(args.data):
        sys.exit(f'--data {args.data!r} is not a folder: link a dataset as '
                 'the README\'s "Datasets" section shows, e.g. '
                 'data/cuhk03_detected.')
    import torch
    from parity.report import ParityReport
    from parity.shims import reference_commit
    torch.set_num_threads(
        int(os.environ.get('OMP_NUM_THREADS', 0)) or os.cpu_count() or 1)
    module_name, _ = METHODS[args.method]
    module = importlib.import_module(module_name)
    report = ParityReport(
        args.method,
        dict(
            reference=osp.abspath(args.reference),
            reference_commit=reference_commit(args.reference),
            device=args.device,
            torch=torch.__version__,
            seed=args.seed,
            levels=args.levels))
    start = time.perf_counter()
    module.run(args, report)
    report.meta['wall_s'] = round(time.perf_counter() - start, 1)
    print(report.tables())
    print('\nwall time per level: ' + ', '.join(
        f'{k} {v:.0f} s' for k, v in report.meta.get('level_s', {}).items()))
    print(f"\n{args.method}: {'PASS' if report.passed else 'FAIL'} "
          f"({report.meta['wall_s']} s)")
    if args.out:
        report.dump(args.out)
    return 0 if report.passed else 1


if __name__ == '__main__':
    sys.exit(main())
