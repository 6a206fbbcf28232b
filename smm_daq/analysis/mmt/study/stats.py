"""The statistics behind seed 001's Figures 4 and 5, per model, over all grains of its runs.

Figure 4: the distribution of the uncertainty ratio (UR, %) of all grains: minimum, quartiles,
maximum. Figure 5: the SSR "resolved at 99 %" for a UR level u: the lowest SSR threshold s such
that at least 99 % of the grains with SSR >= s have UR <= u, i.e. the largest selection of
grains by SSR alone of which 99 % are solved to u; NaN when no threshold achieves it (the
seed's missing points). With it, the fraction of the grains that selection keeps.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from smm_daq.analysis.mmt.study.grid import UR_LEVELS_PCT
from smm_daq.whole_files import written_whole

RESOLVED_FRACTION = 0.99
_HUGE = 1e300  # stands in for an infinite UR while interpolating quartiles


def ur_quartiles(ur_pct: np.ndarray) -> tuple[float, float, float, float, float]:
    """Minimum, first quartile, median, third quartile, maximum (linear interpolation); an
    infinite or undefined UR (|M̂| = 0) counts as larger than any other."""
    ur = np.where(np.isfinite(ur_pct), ur_pct, _HUGE)
    if ur.size == 0:
        return (math.nan,) * 5  # type: ignore[return-value]
    q = np.quantile(ur, [0.0, 0.25, 0.5, 0.75, 1.0])
    return tuple(float(v) if v < _HUGE else math.inf for v in q)  # type: ignore[return-value]


def ssr_resolved(ur_pct: np.ndarray, ssr: np.ndarray, level_pct: float,
                 fraction: float = RESOLVED_FRACTION) -> tuple[float, float]:
    """(threshold SSR, fraction of all grains with SSR >= threshold) for UR level `level_pct`;
    (NaN, 0) when no SSR threshold selects grains of which `fraction` have UR <= level."""
    if ssr.size == 0:
        return math.nan, 0.0
    order = np.argsort(-ssr, kind="stable")
    s_sorted = ssr[order]
    ok = np.cumsum(np.nan_to_num(ur_pct[order], nan=np.inf) <= level_pct)
    n = np.arange(1, ssr.size + 1)
    # a threshold keeps every grain of equal SSR: only the last of a run of ties can end one
    ends = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    good = np.flatnonzero(ends & (ok >= fraction * n))
    if good.size == 0:
        return math.nan, 0.0
    last = int(good[-1])
    return float(s_sorted[last]), (last + 1) / ssr.size


def model_statistics(ur_pct: np.ndarray, ssr: np.ndarray,
                     levels_pct: Sequence[float] = UR_LEVELS_PCT) -> dict[str, float]:
    """The row of one model: grain count, UR quartiles, SSR resolved at 99 % per UR level."""
    ur_pct = np.asarray(ur_pct, dtype=float)
    ssr = np.asarray(ssr, dtype=float)
    lo, q1, med, q3, hi = ur_quartiles(ur_pct)
    row: dict[str, float] = {
        "grains": float(ur_pct.size),
        "ur_min_pct": lo, "ur_q1_pct": q1, "ur_median_pct": med, "ur_q3_pct": q3,
        "ur_max_pct": hi,
    }
    for level in levels_pct:
        s, kept = ssr_resolved(ur_pct, ssr, level)
        row[f"ssr99_ur{level:g}pct"] = s
        row[f"kept_ur{level:g}pct"] = kept
    return row


def write_csv(path: str | Path, rows: Sequence[dict[str, float]]) -> None:
    """One row a model; the header is the keys of the first row."""
    with written_whole(path) as part, part.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in row.items()})
