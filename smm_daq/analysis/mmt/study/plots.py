"""The study's figures, after seed 001's Figures 4 and 5, as PNG files (matplotlib's
Figure without pyplot: Agg, no global backend change).

Figure 4: per (surface, thickness) row and sampling interval column, box plots of the
uncertainty ratio against grain density, one box per noise level (median line, quartile box,
whiskers at minimum and maximum), log scale, the 10 % reference dashed. Figure 5: per
(surface, thickness) row, the SSR resolved at 99 % against grain density, one line per UR
level, for the best (lowest noise, finest interval) and worst (highest noise, coarsest
interval) conditions of the study, as the seed shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from smm_daq.analysis.mmt.study.grid import UR_LEVELS_PCT

Row = dict[str, float]
_MARKERS = ("o", "^", "v", "x", "*", "s", "d")


def _values(rows: Sequence[Row], key: str) -> list[float]:
    return sorted({float(r[key]) for r in rows})


def _select(rows: Sequence[Row], **match: float) -> list[Row]:
    return [r for r in rows if all(float(r[k]) == v for k, v in match.items())]


def _finite(v: float, floor: float) -> float:
    return v if math.isfinite(v) else floor


def plot_uncertainty_boxes(rows: Sequence[Row], path: str | Path) -> None:
    """Figure 4 of the seed from the study's rows (`study.stats.model_statistics` + keys)."""
    geometries = [(s, t) for s in _values(rows, "surface_um") for t in _values(rows, "thickness_um")
                  if _select(rows, surface_um=s, thickness_um=t)]
    intervals = _values(rows, "interval_um")
    densities = _values(rows, "density_per_mm3")
    noises = _values(rows, "noise_nT")
    fig = Figure(figsize=(4.5 * len(intervals), 3.2 * len(geometries)))
    axes = fig.subplots(len(geometries), len(intervals), squeeze=False, sharey=True)
    width = 0.8 / len(noises)
    colours = matplotlib.colormaps["viridis"](
        [k / max(len(noises) - 1, 1) for k in range(len(noises))])
    for (surface, thickness), axrow in zip(geometries, axes, strict=True):
        for interval, ax in zip(intervals, axrow, strict=True):
            for k, noise in enumerate(noises):
                stats, where = [], []
                for i, density in enumerate(densities):
                    sel = _select(rows, surface_um=surface, thickness_um=thickness,
                                  density_per_mm3=density, interval_um=interval, noise_nT=noise)
                    if not sel or not math.isfinite(sel[0]["ur_median_pct"]):
                        continue
                    r = sel[0]
                    top = _finite(r["ur_max_pct"], 1e6)
                    stats.append({"med": r["ur_median_pct"], "q1": r["ur_q1_pct"],
                                  "q3": _finite(r["ur_q3_pct"], top), "whislo": r["ur_min_pct"],
                                  "whishi": top, "fliers": []})
                    where.append(i - 0.4 + width * (k + 0.5))
                if stats:
                    ax.bxp(stats, positions=where, widths=0.9 * width, patch_artist=True,
                           boxprops={"facecolor": colours[k], "linewidth": 0.5},
                           medianprops={"color": "red"}, manage_ticks=False)
            ax.axhline(10.0, color="grey", linestyle="--", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_xticks(range(len(densities)), [f"{d / 1e3:g}" for d in densities])
            ax.set_title(f"{surface:g}² µm², {thickness:g} µm thick, {interval:g} µm step",
                         fontsize=9)
            ax.set_xlabel("grain density (10³ per mm³)")
        axrow[0].set_ylabel("uncertainty ratio (%)")
    handles = [Patch(color=colours[k], label=f"{n:g} nT")
               for k, n in enumerate(noises)]
    fig.legend(handles=handles, loc="upper right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    fig.savefig(path, dpi=120)


def plot_ssr_resolved(rows: Sequence[Row], path: str | Path,
                      levels_pct: Sequence[float] = UR_LEVELS_PCT) -> None:
    """Figure 5 of the seed from the study's rows."""
    geometries = [(s, t) for s in _values(rows, "surface_um") for t in _values(rows, "thickness_um")
                  if _select(rows, surface_um=s, thickness_um=t)]
    noises = _values(rows, "noise_nT")
    intervals = _values(rows, "interval_um")
    cases = [(noises[0], intervals[0])]
    if (noises[-1], intervals[-1]) != cases[0]:
        cases.append((noises[-1], intervals[-1]))
    fig = Figure(figsize=(4.5 * len(cases), 3.2 * len(geometries)))
    axes = fig.subplots(len(geometries), len(cases), squeeze=False, sharey=True)
    for (surface, thickness), axrow in zip(geometries, axes, strict=True):
        for (noise, interval), ax in zip(cases, axrow, strict=True):
            sel = sorted(_select(rows, surface_um=surface, thickness_um=thickness,
                                 noise_nT=noise, interval_um=interval),
                         key=lambda r: r["density_per_mm3"])
            density = [r["density_per_mm3"] / 1e3 for r in sel]
            for level, marker in zip(levels_pct, _MARKERS, strict=False):
                ax.plot(density, [r[f"ssr99_ur{level:g}pct"] for r in sel], marker=marker,
                        label=f"UR {level:g} %")
            ax.set_yscale("log")
            ax.set_title(f"{surface:g}² µm², {thickness:g} µm, {noise:g} nT, {interval:g} µm",
                         fontsize=9)
            ax.set_xlabel("grain density (10³ per mm³)")
        axrow[0].set_ylabel("SSR resolved at 99 %")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
