# Copyright (c) mmreid_usl contributors. All rights reserved.
"""Comparators and the report of a parity run.

Every compared quantity becomes one entry ``{max_abs, max_rel, tol, pass}``
under its level (``components``, ``steps``, ``run``):

- tensors / arrays / numbers: ``max_abs = max |ours - ref|`` and
  ``max_rel = max_abs / max |ref|`` (the error relative to the reference's
  scale: element-wise ratios explode at entries that are zero up to rounding
  on both sides); the entry passes when ``max_rel <= tol`` (or when both
  sides are exactly equal);
- labels (:meth:`ParityReport.compare_labels`): identical up to a renaming
  of the clusters, outliers (-1) on the same samples; ``max_abs`` is the
  number of samples that break the best one-to-one correspondence,
  ``max_rel`` that count over N, ``tol`` 0.

The report also holds the runtime shims applied to the reference, the
switches set on our side, the deviation table (our default vs the
reference behaviour) and the iteration times, and is written as JSON with a
top-level boolean ``"pass"``.
"""
import json
import math
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

LEVELS = ('components', 'steps', 'run')


def _as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy().astype(np.float64, copy=False)
    return np.asarray(x, dtype=np.float64)


def tensor_diff(ours: Any, ref: Any) -> Dict[str, float]:
    """``max_abs`` and ``max_rel`` of two arrays of equal shape.

    Raises:
        ValueError: If the shapes differ.
    """
    a, b = _as_array(ours), _as_array(ref)
    if a.shape != b.shape:
        raise ValueError(f'shapes differ: ours {a.shape} vs reference '
                         f'{b.shape}')
    if a.size == 0:
        return dict(max_abs=0.0, max_rel=0.0)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        same = bool(np.array_equal(a, b, equal_nan=True))
        return dict(max_abs=0.0 if same else math.inf,
                    max_rel=0.0 if same else math.inf)
    max_abs = float(np.abs(a - b).max())
    scale = float(np.abs(b).max())
    if max_abs == 0.0:
        max_rel = 0.0
    else:
        max_rel = max_abs / scale if scale > 0 else math.inf
    return dict(max_abs=max_abs, max_rel=max_rel)


def label_mismatches(ours: Sequence[int], ref: Sequence[int]) -> int:
    """Samples that break the best one-to-one renaming of the clusters.

    Each of our clusters is matched to the reference cluster it shares most
    samples with (outliers, -1, only to outliers); a sample counts as a
    mismatch when its pair of labels is not a matched pair. 0 means the two
    labellings are identical up to a permutation of the cluster ids.
    """
    a = np.asarray(ours, dtype=np.int64).ravel()
    b = np.asarray(ref, dtype=np.int64).ravel()
    if a.shape != b.shape:
        raise ValueError(f'label counts differ: {a.size} vs {b.size}')
    pairs = Counter(zip(a.tolist(), b.tolist()))
    used_a, used_b, kept = set(), set(), 0
    # greedy on the largest overlaps; exact when the labellings agree
    for (la, lb), count in sorted(pairs.items(), key=lambda kv: -kv[1]):
        if la in used_a or lb in used_b or ((la < 0) != (lb < 0)):
            continue
        used_a.add(la)
        used_b.add(lb)
        kept += count
    return int(a.size - kept)


class ParityReport:
    """The tables of one parity run.

    Args:
        method (str): ``cluster_contrast``, ``ice``, ...
        meta (dict): Reference path and commit, device, config, ...
    """

    def __init__(self, method: str, meta: Optional[dict] = None) -> None:
        self.method = method
        self.meta = dict(meta or {})
        self.levels: Dict[str, Dict[str, dict]] = {lv: {} for lv in LEVELS}
        self.shims: List[str] = []
        self.switches: Dict[str, Any] = {}
        self.deviations: List[dict] = []
        self.timing: Dict[str, dict] = {}
        self.notes: List[str] = []

    # ------------------------------------------------------------------
    def _add(self, level: str, name: str, entry: dict) -> dict:
        if level not in self.levels:
            raise KeyError(f'unknown level {level!r}; one of {LEVELS}')
        if name in self.levels[level]:
            raise KeyError(f'{level}/{name} compared twice')
        self.levels[level][name] = entry
        return entry

    def compare(self,
                level: str,
                name: str,
                ours: Any,
                ref: Any,
                tol: float = 1e-5,
                note: str = '') -> dict:
        """Compare two tensors (or numbers) and record the entry."""
        try:
            diff = tensor_diff(ours, ref)
        except ValueError as e:
            diff = dict(max_abs=math.inf, max_rel=math.inf)
            note = f'{note}; {e}' if note else str(e)
        entry = dict(
            diff, tol=tol, pass_=diff['max_rel'] <= tol, note=note)
        return self._add(level, name, _json_entry(entry))

    def compare_labels(self, level: str, name: str, ours: Sequence[int],
                       ref: Sequence[int], note: str = '') -> dict:
        """Labels identical up to a permutation of the cluster ids."""
        bad = label_mismatches(ours, ref)
        n = max(len(np.asarray(ours).ravel()), 1)
        num = len(set(np.asarray(ref).ravel().tolist()) - {-1})
        extra = f'{num} clusters, {int((np.asarray(ref) < 0).sum())} ' \
            'outliers (reference)'
        entry = dict(
            max_abs=float(bad),
            max_rel=bad / n,
            tol=0.0,
            pass_=bad == 0,
            note=f'{note}; {extra}' if note else extra)
        return self._add(level, name, _json_entry(entry))

    def record(self, level: str, name: str, max_abs: float, max_rel: float,
               tol: float, note: str = '') -> dict:
        """An entry whose differences were computed by the caller (e.g. the
        worst tensor of a state dict)."""
        entry = dict(
            max_abs=max_abs, max_rel=max_rel, tol=tol,
            pass_=max_rel <= tol, note=note)
        return self._add(level, name, _json_entry(entry))

    def check(self, level: str, name: str, ok: bool, note: str = '') -> dict:
        """A yes/no fact (e.g. every tensor mapped exactly once)."""
        entry = dict(
            max_abs=0.0 if ok else 1.0,
            max_rel=0.0 if ok else 1.0,
            tol=0.0,
            pass_=bool(ok),
            note=note)
        return self._add(level, name, _json_entry(entry))

    def deviation(self, name: str, switch: str, quantity: str,
                  default: Any, reference: Any, note: str = '') -> None:
        """A row of the table 'our default vs the reference behaviour'."""
        row = dict(
            name=name,
            switch=switch,
            quantity=quantity,
            default=_plain(default),
            reference=_plain(reference),
            note=note)
        if isinstance(default, (int, float)) and isinstance(
                reference, (int, float)):
            row['difference'] = float(default) - float(reference)
        self.deviations.append(row)

    # ------------------------------------------------------------------
    @property
    def passed(self) -> bool:
        """bool: Every entry of every level passed (and there is one)."""
        entries = [e for lv in self.levels.values() for e in lv.values()]
        return bool(entries) and all(e['pass'] for e in entries)

    def level_passed(self, level: str) -> bool:
        """bool: Every entry of ``level`` passed (False if it is empty)."""
        entries = list(self.levels[level].values())
        return bool(entries) and all(e['pass'] for e in entries)

    def to_dict(self) -> dict:
        """The JSON report."""
        return {
            'method': self.method,
            'pass': self.passed,
            'levels_pass': {
                lv: self.level_passed(lv)
                for lv in LEVELS if self.levels[lv]
            },
            'meta': _plain(self.meta),
            'shims': list(self.shims),
            'switches': _plain(self.switches),
            'levels': self.levels,
            'deviations': self.deviations,
            'timing': _plain(self.timing),
            'notes': list(self.notes),
        }

    def dump(self, path: str) -> None:
        """Write the JSON report."""
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=True)

    def tables(self) -> str:
        """Markdown tables: one per level, the deviations, the timing."""
        out = []
        for level in LEVELS:
            rows = self.levels[level]
            if not rows:
                continue
            out.append(f'\n### {self.method}: {level}\n')
            out.append('| quantity | max abs diff | max rel diff | tol | '
                       'pass | note |')
            out.append('|---|---|---|---|---|---|')
            for name, e in rows.items():
                out.append(f"| {name} | {e['max_abs']:.3g} | "
                           f"{e['max_rel']:.3g} | {e['tol']:g} | "
                           f"{'yes' if e['pass'] else '**NO**'} | "
                           f"{e['note']} |")
        if self.deviations:
            out.append(f'\n### {self.method}: our default vs the reference '
                       'behaviour\n')
            out.append('| deviation | switch (reference value) | quantity | '
                       'our default | reference | note |')
            out.append('|---|---|---|---|---|---|')
            for d in self.deviations:
                out.append(f"| {d['name']} | `{d['switch']}` | "
                           f"{d['quantity']} | {_fmt(d['default'])} | "
                           f"{_fmt(d['reference'])} | {d['note']} |")
        if self.timing:
            out.append(f'\n### {self.method}: time per training iteration\n')
            out.append('| implementation | s / iteration | setting |')
            out.append('|---|---|---|')
            for name, t in self.timing.items():
                out.append(f"| {name} | {t['s_per_iter']:.2f} | "
                           f"{t.get('setting', '')} |")
        if self.shims:
            out.append('\nShims applied to the reference at run time: ' +
                       '; '.join(self.shims))
        return '\n'.join(out)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f'{x:.4g}'
    return str(x)


def _json_entry(entry: dict) -> dict:
    """``pass_`` -> ``pass`` and plain floats."""
    out = {k: v for k, v in entry.items() if k != 'pass_'}
    out['pass'] = bool(entry['pass_'])
    for k in ('max_abs', 'max_rel', 'tol'):
        out[k] = float(out[k])
    return out


def _plain(x: Any) -> Any:
    """JSON-friendly copy (tensors and numpy scalars to Python)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x
