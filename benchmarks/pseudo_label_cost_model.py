# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Cost model of pseudo-labelling (kNN -> sparse Jaccard -> DBSCAN), fitted
to the measured stage times of ``docs/benchmarks.md`` and projected to N
images on W devices.

Examples::

    python benchmarks/pseudo_label_cost_model.py
    python benchmarks/pseudo_label_cost_model.py --n 200000 1000000 4000000 \
        --world-size 1 2 4 8 --dim 256 2048 --device h100
    python benchmarks/pseudo_label_cost_model.py --device cpu-2core --json

The measured rows are read from
``benchmarks/data/pseudo_label_stage_times.json`` (``--data``): one object
per documented row with ``source``, ``machine``, ``device`` (``cpu-2core``
| ``h100``), ``n``, ``dim``, ``world_size``, ``knn`` (``exact`` | ``ivf``),
``knn_s``, ``jaccard_s``, ``dbscan_s`` (null where the stage was not timed
on its own) and ``commit``; optional keys: ``fit`` (the stages this row's
figures are fitted to; the other figures are only compared with the
model), ``devices`` (the machines the ranks ran on, default
``world_size``), ``after_knn_s``, ``ivf_build_s``, ``ivf_search_s``,
``nlist``, ``nprobe``, ``k1``, ``k2``, ``threads``, ``precision``,
``note``.

**Model.** The time of the slowest of the W ranks, in seconds; the stages
run one after the other (``sharded_pseudo_labels`` in
``mmreid_usl/clustering/sharded/``)::

    exact kNN  t = a · N² · D / W  [+ t0 with --knn-intercept]
    IVF kNN    t = b_build · N · nlist · D
                 + b_search · N · nprobe · (N / nlist) · D / W,
               nlist = clip(round(4 √N), 1, N // 39)
               (``approx_knn.default_nlist``), so the search term is
               b_search · N^1.5 · nprobe · D / (4 W)
    Jaccard    t = c · N · k1 · k2 · [(1 - f) · g(W) / W + f],
               g(W) = 1 (--jaccard-balance even)
                    | (2 W - 1) / W (triangle: rank 0's share of the
                      upper-triangle rows of ``jaccard_upper_rows``)
    DBSCAN     t = d · N  (rank 0 only, not divided by W)
    comm       t = 0 for W = 1, else
               [(W - 1) / W · N · B_row + 8 N] / BW,
               B_row = 2 · 4 D          two ring passes of fp32 features
                     + 8 k1 + 4         all-gather of the kNN lists, norms
                     + 2 · 8 + 12 (v + v̂)  all-gathers of V and V̂ (CSR:
                                          int64 indptr, int32 column,
                                          float64 value)
                     + 20 p             gather of the upper-triangle pairs
                                          on rank 0 (int64 row and column,
                                          float32 value)
               and 8 N for the broadcast of the int64 labels
    total      t = kNN + Jaccard + DBSCAN + comm

The constants ``a``, ``b_build``, ``b_search``, ``c``, ``d`` (and ``t0``)
are fitted per device by least squares (``numpy.linalg.lstsq``) to the rows
whose ``fit`` names the stage: ``absolute`` weighting (default) minimises
``Σ (model - t)²``, ``relative`` minimises ``Σ ((model - t) / t)²``. A
constant that no row of the device measures is assumed (and every value
that rests on it is marked ``*``): on ``h100`` the Jaccard and DBSCAN
constants are the ``cpu-2core`` ones and the IVF constants the
``cpu-2core`` ones times ``a_h100 / a_cpu``; ``--knn-a``, ``--ivf-build-b``,
``--ivf-search-b``, ``--jaccard-c``, ``--dbscan-d`` replace any of them.

**Assumptions** (printed under the table, each with what would have to be
measured to replace it; see :func:`assumptions`):

1. The stages run one after the other on the slowest rank; the total is
   their sum, and no transfer overlaps compute (the ring in the code
   overlaps its transfers with the search, so the comm term is an upper
   bound there).
2. Exact kNN: each rank searches its N / W rows against all N rows, at a
   cost proportional to N² · D / W; the top-k selection (independent of D)
   is not a separate term; fp32 features.
3. IVF kNN: nlist = clip(round(4 √N), 1, N // 39); every rank builds (or
   receives) the whole index (the build is not divided by W; the sharded
   path refuses approximate backends today, so this path is hypothetical);
   the recall at a given nprobe is not modelled (measured only at
   N = 20,000 to 1,000,000 in docs/benchmarks.md); the cpu-2core IVF
   constants come from the self-join on spherical cells (2 threads).
4. Jaccard: a constant cost per row and per k1 · k2 (only k1 = 30,
   k2 = 6 measured), independent of D, parallel share (1 - f) split over
   the ranks with imbalance g(W).
5. DBSCAN: linear in N on rank 0 (symmetric CSR build included).
6. Communication: the volumes above at BW bytes per second per rank and
   direction, no latency; v, v̂ and p (entries per row of V, V̂ and stored
   pairs per row) as given.
7. h100: the Jaccard and DBSCAN run on the host CPU with 2 threads, as in
   every measured H100 row and in the sharded path, at the cpu-2core
   speed.
8. h100 IVF: not measured (faiss-gpu not installed on that machine).
9. Rows under load, multi-process rows on one machine, 1-thread rows and
   bf16 rows are only compared with the model (not fitted).
10. Memory is not modelled.
11. The constants come from the synthetic features of
    ``benchmarks/synthetic_features.py``.
12. Each of the W ranks has a device and its own host CPU cores.

A small cost model written here because no library has it; it only
evaluates the formulas above.
"""
import argparse
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

DEFAULT_DATA = osp.join(
    osp.dirname(osp.abspath(__file__)), 'data',
    'pseudo_label_stage_times.json')
DEVICES = ('cpu-2core', 'h100')
KNN_KINDS = ('exact', 'ivf')
REQUIRED_KEYS = ('source', 'machine', 'device', 'n', 'dim', 'world_size',
                 'knn', 'knn_s', 'jaccard_s', 'dbscan_s', 'commit')
#: Fitted stages: the constant's name, the row key it is fitted to, unit.
STAGES = {
    'knn': ('a', 'knn_s', 's / (N² · D)'),
    'ivf_build': ('b_build', 'ivf_build_s', 's / (N · nlist · D)'),
    'ivf_search':
    ('b_search', 'ivf_search_s', 's / (N · nprobe · (N / nlist) · D)'),
    'jaccard': ('c', 'jaccard_s', 's / (N · k1 · k2)'),
    'dbscan': ('d', 'dbscan_s', 's / N'),
}
#: Per-rank link bandwidth (GB/s, each direction) assumed for W > 1.
DEFAULT_BANDWIDTH_GBS = {'h100': 50.0, 'cpu-2core': 1.25}
DEFAULT_PAIRS_PER_ROW = 26.8
DEFAULT_NPROBE = 128


def default_nlist(n: int) -> int:
    """IVF cells, the rule of ``mmreid_usl.clustering.approx_knn``:
    ``clip(round(4 √N), 1, N // 39)``.

    Args:
        n (int): Images N.

    Returns:
        int: nlist.
    """
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def load_rows(path: str) -> List[Dict]:
    """Read and check the measured rows.

    Args:
        path (str): JSON file with a list of row objects.

    Returns:
        list[dict]: The rows.

    Raises:
        ValueError: On a missing key, an unknown device or kNN kind.
    """
    with open(path) as f:
        rows = json.load(f)
    if not isinstance(rows, list):
        raise ValueError(f'{path}: expected a list of rows')
    for i, row in enumerate(rows):
        missing = [k for k in REQUIRED_KEYS if k not in row]
        if missing:
            raise ValueError(f'{path}: row {i} lacks {missing}')
        if row['device'] not in DEVICES:
            raise ValueError(f'{path}: row {i}: device {row["device"]!r} '
                             f'not in {DEVICES}')
        if row['knn'] not in KNN_KINDS:
            raise ValueError(f'{path}: row {i}: knn {row["knn"]!r} not in '
                             f'{KNN_KINDS}')
        unknown = set(row.get('fit', [])) - set(STAGES)
        if unknown:
            raise ValueError(f'{path}: row {i}: unknown fit stages '
                             f'{sorted(unknown)}')
    return rows


def jaccard_share(w: int,
                  balance: str = 'even',
                  serial_fraction: float = 0.0) -> float:
    """The slowest rank's share of the one-process Jaccard work.

    Args:
        w (int): Ranks W.
        balance (str): ``'even'`` (g = 1) or ``'triangle'``
            (g = (2 W - 1) / W).
        serial_fraction (float): f, the part every rank repeats.

    Returns:
        float: ``(1 - f) · g(W) / W + f``.
    """
    g = 1.0 if balance == 'even' else (2.0 * w - 1.0) / w
    return (1.0 - serial_fraction) * g / w + serial_fraction


def stage_feature(stage: str,
                  n: float,
                  dim: float,
                  w: int = 1,
                  k1: int = 30,
                  k2: int = 6,
                  nlist: Optional[int] = None,
                  nprobe: int = DEFAULT_NPROBE,
                  balance: str = 'even',
                  serial_fraction: float = 0.0) -> float:
    """The quantity a stage's constant multiplies (see the module
    docstring).

    Args:
        stage (str): A key of :data:`STAGES`.
        n (float): Images N.
        dim (float): Feature dimension D.
        w (int): Ranks W.
        k1 (int): kNN size of the Jaccard.
        k2 (int): Query-expansion size of the Jaccard.
        nlist (int, optional): IVF cells (default :func:`default_nlist`).
        nprobe (int): IVF cells visited per query.
        balance (str): See :func:`jaccard_share`.
        serial_fraction (float): See :func:`jaccard_share`.

    Returns:
        float: The feature value.
    """
    nlist = default_nlist(int(n)) if nlist is None else nlist
    if stage == 'knn':
        return n * n * dim / w
    if stage == 'ivf_build':
        return n * nlist * dim
    if stage == 'ivf_search':
        return n * nprobe * (n / nlist) * dim / w
    if stage == 'jaccard':
        return n * k1 * k2 * jaccard_share(w, balance, serial_fraction)
    if stage == 'dbscan':
        return float(n)
    raise KeyError(stage)


def fit_least_squares(
        x: np.ndarray,
        t: np.ndarray,
        weighting: str = 'absolute') -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares constants ``θ`` of ``t ≈ x θ``.

    Args:
        x (np.ndarray): Features ``(m, p)``.
        t (np.ndarray): Measured seconds ``(m,)``.
        weighting (str): ``'absolute'`` minimises ``Σ (xθ - t)²``,
            ``'relative'`` minimises ``Σ ((xθ - t) / t)²``.

    Returns:
        tuple[np.ndarray]: ``θ`` ``(p,)`` and the relative residuals
        ``(xθ - t) / t`` ``(m,)``.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(t), -1)
    t = np.asarray(t, dtype=np.float64)
    if weighting == 'relative':
        a, b = x / t[:, None], np.ones_like(t)
    elif weighting == 'absolute':
        a, b = x, t
    else:
        raise ValueError(f'weighting {weighting!r}')
    # scale the columns so that features ~1e13 and an intercept of 1 are
    # equally well conditioned; undone on θ
    scale = np.abs(a).max(0)
    scale[scale == 0] = 1.0
    theta = np.linalg.lstsq(a / scale, b, rcond=None)[0] / scale
    return theta, (x @ theta - t) / t


def _row_k(row: Dict) -> Tuple[int, int]:
    return int(row.get('k1', 30)), int(row.get('k2', 6))


def _row_feature(stage: str, row: Dict, opts: Dict) -> float:
    """:func:`stage_feature` of a measured row (its own W, nlist, nprobe)."""
    k1, k2 = _row_k(row)
    return stage_feature(stage, row['n'], row['dim'],
                         int(row.get('devices', row['world_size'])), k1, k2,
                         row.get('nlist'), row.get('nprobe', DEFAULT_NPROBE),
                         opts['jaccard_balance'],
                         opts['jaccard_serial_fraction'])


def fit_device(rows: Sequence[Dict],
               device: str,
               weighting: str = 'absolute',
               knn_intercept: bool = False,
               opts: Optional[Dict] = None) -> Dict[str, Dict]:
    """Fit the constants of one device to its rows' ``fit`` stages.

    Args:
        rows (Sequence[dict]): Measured rows (:func:`load_rows`).
        device (str): One of :data:`DEVICES`.
        weighting (str): See :func:`fit_least_squares`.
        knn_intercept (bool): Fit ``t = t0 + a · N² · D / W`` for the exact
            kNN (needs two rows of different N² · D).
        opts (dict, optional): ``jaccard_balance``,
            ``jaccard_serial_fraction`` (defaults ``'even'``, 0).

    Returns:
        dict: ``stage -> {name, value, unit, basis: 'fit', rows,
        rel_residuals, rms_rel_residual, sources}`` (and ``knn_t0`` with the
        intercept), for the stages some row measures.
    """
    opts = dict(
        dict(jaccard_balance='even', jaccard_serial_fraction=0.0),
        **(opts or {}))
    out = {}
    for stage, (name, key, unit) in STAGES.items():
        sel = [
            r for r in rows if r['device'] == device
            and stage in r.get('fit', []) and r.get(key) is not None
        ]
        if not sel:
            continue
        x = np.array([[_row_feature(stage, r, opts)] for r in sel])
        t = np.array([float(r[key]) for r in sel])
        intercept = stage == 'knn' and knn_intercept
        if intercept:
            if len(set(x[:, 0])) < 2:
                raise ValueError(f'{device}: --knn-intercept needs two kNN '
                                 'rows of different N² · D')
            x = np.concatenate([x, np.ones_like(x)], 1)
        theta, res = fit_least_squares(x, t, weighting)
        out[stage] = dict(
            name=name,
            value=float(theta[0]),
            unit=unit,
            basis='fit',
            rows=len(sel),
            rel_residuals=[float(v) for v in res],
            rms_rel_residual=float(np.sqrt(np.mean(res**2))),
            sources=[r['source'] for r in sel])
        if intercept:
            out['knn_t0'] = dict(
                name='t0',
                value=float(theta[1]),
                unit='s',
                basis='fit',
                rows=len(sel),
                rel_residuals=out[stage]['rel_residuals'],
                rms_rel_residual=out[stage]['rms_rel_residual'],
                sources=out[stage]['sources'])
    return out


def resolve_constants(rows: Sequence[Dict],
                      device: str,
                      weighting: str = 'absolute',
                      knn_intercept: bool = False,
                      overrides: Optional[Dict[str, float]] = None,
                      opts: Optional[Dict] = None) -> Dict[str, Dict]:
    """The device's constants: fitted, else assumed (module docstring),
    then ``overrides`` (stage -> value, ``basis: 'given'``).

    Args:
        rows (Sequence[dict]): Measured rows.
        device (str): One of :data:`DEVICES`.
        weighting (str): See :func:`fit_least_squares`.
        knn_intercept (bool): See :func:`fit_device`.
        overrides (dict, optional): Values that replace the constants.
        opts (dict, optional): See :func:`fit_device`.

    Returns:
        dict: ``stage -> constant`` for every stage of :data:`STAGES`
        (a stage that is neither measured nor given has ``value`` None).
    """
    consts = fit_device(rows, device, weighting, knn_intercept, opts)
    ref = fit_device(rows, 'cpu-2core', weighting, False,
                     opts) if device != 'cpu-2core' else consts
    for stage, (name, _, unit) in STAGES.items():
        if stage in consts:
            continue
        value, note = None, 'not measured and not given'
        if stage in ('jaccard', 'dbscan') and stage in ref:
            value = ref[stage]['value']
            note = ('cpu-2core constant: the stage runs on the host CPU '
                    '(2 threads), as in the measured rows of this device')
        elif stage.startswith('ivf') and stage in ref and \
                'knn' in consts and 'knn' in ref:
            ratio = consts['knn']['value'] / ref['knn']['value']
            value = ref[stage]['value'] * ratio
            note = (f'cpu-2core constant x a_{device} / a_cpu-2core '
                    f'(= {ratio:.3g}, the exact kNN\'s speed ratio)')
        consts[stage] = _unfitted(name, value, unit, 'assumed', note)
    for stage, value in (overrides or {}).items():
        if value is None:
            continue
        name, _, unit = STAGES[stage]
        consts[stage] = _unfitted(name, float(value), unit, 'given',
                                  'given on the command line')
    return consts


def _unfitted(name: str, value: float, unit: str, basis: str,
              note: str) -> dict:
    """A constant that no measured row fits (``basis`` 'assumed' or
    'given'), in the layout of the fitted ones."""
    return dict(name=name, value=value, unit=unit, basis=basis, rows=0,
                rel_residuals=[], rms_rel_residual=None, sources=[],
                note=note)


def comm_bytes(
        n: float,
        dim: float,
        w: int,
        k1: int = 30,
        v_nnz: float = 30.0,
        vhat_nnz: float = 180.0,
        pairs_per_row: float = DEFAULT_PAIRS_PER_ROW) -> Dict[str, float]:
    """Bytes over the busiest rank's link (module docstring), by step.

    Args:
        n (float): Images N.
        dim (float): Feature dimension D.
        w (int): Ranks W (W = 1: nothing is sent).
        k1 (int): kNN list length.
        v_nnz (float): Stored entries per row of V.
        vhat_nnz (float): Stored entries per row of V̂.
        pairs_per_row (float): Stored upper-triangle pairs per row.

    Returns:
        dict: ``ring``, ``knn_lists``, ``csr``, ``pairs``, ``labels`` bytes.
    """
    if w <= 1:
        return dict(ring=0.0, knn_lists=0.0, csr=0.0, pairs=0.0, labels=0.0)
    share = (w - 1) / w * n
    return dict(
        ring=share * 2 * 4 * dim,
        knn_lists=share * (8 * k1 + 4),
        csr=share * (2 * 8 + 12 * (v_nnz + vhat_nnz)),
        pairs=share * 20 * pairs_per_row,
        labels=8.0 * n)


def project(n: int, dim: int, w: int, consts: Dict[str, Dict],
            opts: Dict) -> Dict:
    """Projected stage times of N images, D dimensions, W ranks.

    Args:
        n (int): Images N.
        dim (int): Feature dimension D.
        w (int): Ranks W.
        consts (dict): :func:`resolve_constants`.
        opts (dict): ``knn`` (``exact`` | ``ivf``), ``nprobe``, ``k1``,
            ``k2``, ``jaccard_balance``, ``jaccard_serial_fraction``,
            ``bandwidth_gbs``, ``v_nnz``, ``vhat_nnz``, ``pairs_per_row``.

    Returns:
        dict: ``knn_s``, ``jaccard_s``, ``dbscan_s``, ``comm_s``,
        ``total_s`` and ``assumed`` (the stages resting on an assumed
        constant or on the bandwidth).
    """

    def term(stage: str) -> Tuple[float, bool]:
        c = consts[stage]
        if c['value'] is None:
            raise ValueError(f'no constant for {stage}: give it on the '
                             'command line')
        x = stage_feature(stage, n, dim, w, opts['k1'], opts['k2'], None,
                          opts['nprobe'], opts['jaccard_balance'],
                          opts['jaccard_serial_fraction'])
        return c['value'] * x, c['basis'] == 'assumed'

    assumed = []
    if opts['knn'] == 'exact':
        knn, flag = term('knn')
        if 'knn_t0' in consts:
            knn += consts['knn_t0']['value']
    else:
        build, f1 = term('ivf_build')
        search, f2 = term('ivf_search')
        knn, flag = build + search, f1 or f2
    if flag:
        assumed.append('knn')
    jac, flag = term('jaccard')
    if flag:
        assumed.append('jaccard')
    dbs, flag = term('dbscan')
    if flag:
        assumed.append('dbscan')
    parts = comm_bytes(n, dim, w, opts['k1'], opts['v_nnz'], opts['vhat_nnz'],
                       opts['pairs_per_row'])
    comm = sum(parts.values()) / (opts['bandwidth_gbs'] * 1e9)
    if w > 1:
        assumed.append('comm')
    return dict(
        n=n,
        dim=dim,
        world_size=w,
        knn=opts['knn'],
        nlist=default_nlist(n) if opts['knn'] == 'ivf' else None,
        knn_s=knn,
        jaccard_s=jac,
        dbscan_s=dbs,
        comm_s=comm,
        total_s=knn + jac + dbs + comm,
        comm_bytes=parts,
        assumed=assumed)


def check_rows(rows: Sequence[Dict], device: str, consts: Dict[str, Dict],
               opts: Dict) -> List[Dict]:
    """Every measured stage figure of the device's rows against the model
    (at the row's own N, D, devices, nlist, nprobe; no comm term).

    Args:
        rows (Sequence[dict]): Measured rows.
        device (str): One of :data:`DEVICES`.
        consts (dict): :func:`resolve_constants`.
        opts (dict): See :func:`project`.

    Returns:
        list[dict]: ``source``, ``n``, ``dim``, ``stage``, ``measured_s``,
        ``model_s``, ``rel_residual``, ``used`` (``fit`` | ``check``).
    """

    def model(stage: str, row: Dict) -> Optional[float]:
        value = consts[stage]['value']
        if value is None:
            return None
        out = value * _row_feature(stage, row, opts)
        if stage == 'knn' and 'knn_t0' in consts:
            out += consts['knn_t0']['value']
        return out

    out = []
    for row in rows:
        if row['device'] != device:
            continue
        if row['knn'] == 'ivf':
            stages = [('ivf_build', 'ivf_build_s', 'ivf_build'),
                      ('ivf_search', 'ivf_search_s', 'ivf_search')]
        else:
            stages = [('knn', 'knn_s', 'knn')]
        stages += [('jaccard', 'jaccard_s', 'jaccard'),
                   ('dbscan', 'dbscan_s', 'dbscan'),
                   ('after_knn', 'after_knn_s', None)]
        for label, key, stage in stages:
            if row.get(key) is None:
                continue
            if stage is None:
                a, b = model('jaccard', row), model('dbscan', row)
                pred = None if a is None or b is None else a + b
            else:
                pred = model(stage, row)
            meas = float(row[key])
            out.append(
                dict(
                    source=row['source'],
                    n=row['n'],
                    dim=row['dim'],
                    devices=int(row.get('devices', row['world_size'])),
                    stage=label,
                    measured_s=meas,
                    model_s=pred,
                    rel_residual=None if pred is None else
                    (pred - meas) / meas,
                    used='fit' if stage in row.get('fit', []) else 'check'))
    return out


def assumptions(device: str, opts: Dict,
                consts: Dict[str, Dict]) -> List[Dict[str, str]]:
    """The model's assumptions with the numbers of this run, each with what
    would have to be measured to replace it.

    Args:
        device (str): One of :data:`DEVICES`.
        opts (dict): See :func:`project`.
        consts (dict): :func:`resolve_constants`.

    Returns:
        list[dict]: ``assumption`` and ``to_measure``.
    """
    g = ('even (g = 1)' if opts['jaccard_balance'] == 'even' else
         'triangle (g = (2W - 1) / W)')
    out = [
        ('Stages run one after the other on the slowest rank; total = kNN + '
         'Jaccard + DBSCAN + comm, no transfer overlapped with compute (the '
         'ring overlaps them in the code: comm is an upper bound there).',
         'per-stage times of a W-rank run on W devices '
         '(pseudo_label_bench.py --world-size W, one rank per device).'),
        ('Exact kNN t = a N^2 D / W' +
         (' + t0' if 'knn_t0' in consts else '') +
         ': each rank searches N/W rows against all N; the top-k selection '
         '(independent of D) is not a separate term; fp32.',
         'the kNN at two D for one N, and at N >= 200,000 on the device.'),
        ('IVF kNN: nlist = clip(round(4 sqrt N), 1, N // 39); build not '
         'divided by W (index replicated on every rank; the sharded path '
         'refuses approximate backends, so this path is hypothetical); '
         f'nprobe = {opts["nprobe"]}, its recall not modelled (measured '
         'at N = 20,000 to 1,000,000 on the synthetic features); cpu-2core '
         'IVF constants fitted to the self-join on spherical cells, '
         '2 threads.',
         'build and search times and recall@30 at N >= 200,000 on the '
         'device.'),
        (f'Jaccard t = c N k1 k2 [(1 - f) g(W) / W + f] with k1 = '
         f'{opts["k1"]}, k2 = {opts["k2"]}, f = '
         f'{opts["jaccard_serial_fraction"]}, balance {g}; linear in N, '
         'linear in k1 k2 (only k1 = 30, k2 = 6 measured), independent of D; '
         'c fitted to the idle rows of the current code that time it '
         '(N = 200,000 and 1,000,000, 256-d).',
         'the Jaccard alone at 2 or 3 N of one distribution (e.g. 100k, '
         '200k, 400k), and per-rank encode/expand/rows times at W > 1.'),
        ('DBSCAN t = d N on rank 0 (symmetric CSR build included), fitted to '
         'the loaded-machine rows, the only ones that time it alone (an '
         'upper bound).', 'DBSCAN alone on an idle machine at N >= 200,000.'),
        (f'Communication (W > 1): the bytes of the module docstring at '
         f'{opts["bandwidth_gbs"]:g} GB/s per rank and direction, no '
         f'latency; V and V-hat entries per row v = {opts["v_nnz"]:g}, '
         f'v-hat = {opts["vhat_nnz"]:g} (not measured), stored pairs per row '
         f'p = {opts["pairs_per_row"]:g} (measured at N = 200,000, 256-d, '
         'max_distance 0.61).',
         'gather_knn_s and gather_pairs_s of a W-device run, and nnz of V and '
         'V-hat per row.'),
    ]
    if device == 'h100':
        out += [
            ('h100: the Jaccard and DBSCAN run on the host CPU with 2 '
             'threads (as in every measured H100 row and in the sharded path) '
             'at the cpu-2core constants; the torch GPU Jaccard '
             '(jaccard_device="cuda") is not timed.',
             'pseudo_label_bench.py --device cuda --knn torch with '
             '--jaccard-device cpu and cuda, stages split, at N >= 200,000.'),
            ('h100 IVF: cpu-2core IVF constants x a_h100 / a_cpu-2core '
             '(faiss-gpu is not installed on that machine).',
             'faiss-gpu IVF build and search on the H100.'),
        ]
    out += [
        ('Fitted rows are those whose "fit" names the stage in the data '
         'file; rows under load, two ranks sharing one machine, 1-thread and '
         'bf16 rows are compared with the model only. Weighting: '
         f'{opts["weighting"]} least squares.',
         'idle, fresh-process medians for every stage at 3+ sizes.'),
        ('Memory is not modelled (rank 0 holds all N p pairs and the '
         'symmetric CSR; every rank holds the kNN lists, V and V-hat).',
         'peak RSS of rank 0 at W > 1 and N >= 1M.'),
        ('Constants come from the synthetic features of '
         'benchmarks/synthetic_features.py (20 images per id at 256-d); the '
         'Jaccard per-row cost depends on how the sets overlap, i.e. on the '
         'features.', 'the stages on real embeddings of the target data set.'),
        ('Each of the W ranks has its own device and host CPU cores (2 '
         'threads for the CPU stages).',
         'the same runs with the ranks sharing one host.'),
    ]
    return [dict(assumption=a, to_measure=m) for a, m in out]


def _fmt(t: Optional[float]) -> str:
    if t is None:
        return 'n/a'
    if t >= 100:
        return f'{t:,.0f}'
    if t >= 1:
        return f'{t:.1f}'
    return f'{t:.2f}'


def _pct(r: Optional[float]) -> str:
    if r is None:
        return 'n/a'
    return '0%' if abs(r) < 0.005 else f'{r:+.0%}'


def _human(t: float) -> str:
    if t >= 3600:
        return f'{t / 3600:.1f} h'
    if t >= 60:
        return f'{t / 60:.1f} min'
    return f'{t:.1f} s'


def format_report(result: Dict) -> str:
    """Markdown: the projection table, the constants, the rows against the
    model and the assumptions.

    Args:
        result (dict): What :func:`main` returns.

    Returns:
        str: The report.
    """
    lines = [
        f'Device {result["device"]}, kNN {result["knn"]}, k1 = '
        f'{result["options"]["k1"]}, k2 = {result["options"]["k2"]}, '
        f'bandwidth {result["options"]["bandwidth_gbs"]:g} GB/s '
        '(times in s; * = rests on an assumed, not measured, constant of '
        'this device or on the bandwidth)', '',
        '| N | D | W | kNN (s) | Jaccard (s) | DBSCAN (s) | comm (s) | '
        'total (s) | total |', '|---|---|---|---|---|---|---|---|---|'
    ]
    for p in result['projections']:
        cells = []
        for stage in ('knn', 'jaccard', 'dbscan', 'comm'):
            mark = '*' if stage in p['assumed'] else ''
            cells.append(_fmt(p[f'{stage}_s']) + mark)
        mark = '*' if p['assumed'] else ''
        lines.append(f'| {p["n"]:,} | {p["dim"]} | {p["world_size"]} | ' +
                     ' | '.join(cells) + f' | {_fmt(p["total_s"])}{mark} | '
                     f'{_human(p["total_s"])}{mark} |')
    lines += [
        '', 'Constants:', '',
        '| stage | constant | value | unit | basis | rows | '
        'rms rel. residual |', '|---|---|---|---|---|---|---|'
    ]
    for stage, c in result['constants'].items():
        value = 'n/a' if c['value'] is None else f'{c["value"]:.4g}'
        rms = c['rms_rel_residual']
        basis = c['basis'] + (f': {c["note"]}' if c.get('note') else '')
        lines.append(f'| {stage} | {c["name"]} | {value} | {c["unit"]} | '
                     f'{basis} | {c["rows"]} | '
                     f'{"" if rms is None else f"{rms:.1%}"} |')
    lines += [
        '', 'Measured rows against the model (fit: used in the fit; check: '
        'compared only):', '',
        '| source | N | D | devices | stage | measured (s) | model (s) | '
        'rel. residual | used |', '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in result['residuals']:
        res = r['rel_residual']
        lines.append(
            f'| {r["source"]} | {r["n"]:,} | {r["dim"]} | {r["devices"]} | '
            f'{r["stage"]} | {_fmt(r["measured_s"])} | '
            f'{_fmt(r["model_s"])} | '
            f'{_pct(res)} | {r["used"]} |')
    lines += ['', 'Assumptions:', '']
    for i, a in enumerate(result['assumptions'], 1):
        lines.append(f'{i}. {a["assumption"]} To replace it: '
                     f'{a["to_measure"]}')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data', default=DEFAULT_DATA, help='measured rows (JSON list)')
    parser.add_argument(
        '--n',
        type=int,
        nargs='+',
        default=[1_000_000, 4_000_000],
        help='images N')
    parser.add_argument(
        '--world-size',
        type=int,
        nargs='+',
        default=[1, 2, 4, 8],
        help='ranks W')
    parser.add_argument(
        '--dim',
        type=int,
        nargs='+',
        default=[256, 2048],
        help='feature dimension D')
    parser.add_argument('--device', default='h100', choices=DEVICES)
    parser.add_argument('--knn', default='exact', choices=KNN_KINDS)
    parser.add_argument('--nprobe', type=int, default=DEFAULT_NPROBE)
    parser.add_argument('--k1', type=int, default=30)
    parser.add_argument('--k2', type=int, default=6)
    parser.add_argument(
        '--weighting', default='absolute', choices=['absolute', 'relative'])
    parser.add_argument(
        '--knn-intercept',
        action='store_true',
        help='fit t = t0 + a N^2 D / W for the exact kNN')
    parser.add_argument(
        '--jaccard-balance', default='even', choices=['even', 'triangle'])
    parser.add_argument('--jaccard-serial-fraction', type=float, default=0.0)
    parser.add_argument(
        '--bandwidth-gbs',
        type=float,
        help='per-rank link bandwidth, GB/s (default: '
        '50 for h100, about PCIe 5.0 x16; 1.25 for '
        'cpu-2core, 10 Gb/s Ethernet)')
    parser.add_argument(
        '--v-nnz', type=float, help='entries per row of V (default k1)')
    parser.add_argument(
        '--vhat-nnz',
        type=float,
        help='entries per row of V-hat (default k1 * k2)')
    parser.add_argument(
        '--pairs-per-row', type=float, default=DEFAULT_PAIRS_PER_ROW)
    for stage in STAGES:
        name = {
            'knn': 'knn-a',
            'ivf_build': 'ivf-build-b',
            'ivf_search': 'ivf-search-b',
            'jaccard': 'jaccard-c',
            'dbscan': 'dbscan-d'
        }[stage]
        parser.add_argument(
            f'--{name}',
            type=float,
            dest=f'const_{stage}',
            help=f'replace the constant ({STAGES[stage][2]})')
    parser.add_argument(
        '--json',
        action='store_true',
        help='print one JSON object as the last line')
    args = parser.parse_args(argv)
    if not 0 <= args.jaccard_serial_fraction <= 1:
        parser.error('--jaccard-serial-fraction must be in [0, 1]')
    if min(args.world_size) < 1 or min(args.n) < 1 or min(args.dim) < 1:
        parser.error('--n, --dim and --world-size must be positive')
    return args


def model_options(args: argparse.Namespace) -> Dict:
    """The options of :func:`project` from parsed arguments (defaults
    filled in: the device's bandwidth, ``v = k1``, ``v̂ = k1 · k2``)."""
    return dict(
        knn=args.knn,
        nprobe=args.nprobe,
        k1=args.k1,
        k2=args.k2,
        weighting=args.weighting,
        jaccard_balance=args.jaccard_balance,
        jaccard_serial_fraction=args.jaccard_serial_fraction,
        bandwidth_gbs=(args.bandwidth_gbs
                       or DEFAULT_BANDWIDTH_GBS[args.device]),
        v_nnz=args.k1 if args.v_nnz is None else args.v_nnz,
        vhat_nnz=(args.k1 *
                  args.k2 if args.vhat_nnz is None else args.vhat_nnz),
        pairs_per_row=args.pairs_per_row)


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    """Fit, project, print the report (and the JSON line with ``--json``).

    Args:
        argv (Sequence[str], optional): Command-line arguments.

    Returns:
        dict: ``device``, ``knn``, ``options``, ``constants``,
        ``projections``, ``residuals``, ``assumptions``.
    """
    args = parse_args(argv)
    rows = load_rows(args.data)
    opts = model_options(args)
    overrides = {s: getattr(args, f'const_{s}') for s in STAGES}
    consts = resolve_constants(rows, args.device, args.weighting,
                               args.knn_intercept, overrides, opts)
    projections = [
        project(n, d, w, consts, opts) for d in args.dim for n in args.n
        for w in args.world_size
    ]
    result = dict(
        device=args.device,
        knn=args.knn,
        data=args.data,
        options=opts,
        constants=consts,
        projections=projections,
        residuals=check_rows(rows, args.device, consts, opts),
        assumptions=assumptions(args.device, opts, consts))
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
