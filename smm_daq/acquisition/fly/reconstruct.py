"""From a flown line's raw streams to the plan's pixels.

A fly scan records, per line, the lock-in's output sampled in time (its buffer, at a fixed
rate) and the stage's actual position sampled in time (its data recorder). A reading taken
at time t reflects the field where the sensor was at t − L: the lock-in's n-pole low-pass
filter delays a slowly varying input by n·τ (its group delay at low frequency), and the
stage's servo and the trigger add their own delays. So each sample is placed at the recorded
position interpolated to t − L, and the samples falling in a pixel are averaged.

L is first the model's (`model_lag`), then refined from the data: on a serpentine raster a
wrong L shifts forward lines one way and backward lines the other, so the L that makes
adjacent forward and backward lines agree best is the right one (`refine_lag`). The filter
also blurs along the line by about v·τ·√n (`blur_pixels`); a fly plan chooses τ to keep that
under a third of a pixel (`settings.MAX_BLUR_PX`), so no line needs deconvolving.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LAG_GRID = 41  # candidate lags in the coarse search before the bounded refinement


@dataclass(frozen=True)
class LineStreams:
    """The raw record of one flown line (SI units).

    `t` (n,) s and `bz` (n,) T: the lock-in's samples and their times; `t_pos` (m,) s and
    `x_pos` (m,) m: the stage's recorded positions along the line and their times, on the
    same clock. `forward` is True when the line runs towards +x.
    """

    t: np.ndarray
    bz: np.ndarray
    t_pos: np.ndarray
    x_pos: np.ndarray
    forward: bool = True


def model_lag(time_constant: float, poles: int, extra_delay: float = 0.0) -> float:
    """The delay (s) of a reading behind the field: n·τ for n cascaded RC poles (each pole's
    group delay at low frequency is τ), plus servo and trigger delays."""
    return poles * time_constant + extra_delay


def blur_pixels(velocity: float, time_constant: float, poles: int, step: float) -> float:
    """RMS width, in pixels, of the n-pole filter's response mapped along the line: the
    impulse response of n cascaded poles is a gamma distribution of SD √n·τ."""
    return abs(velocity) * np.sqrt(poles) * time_constant / step


def sample_positions(line: LineStreams, lag: float) -> np.ndarray:
    """Where the sensor was when the field of each sample was read: x(t − lag)."""
    order = np.argsort(line.t_pos)
    return np.interp(line.t - lag, line.t_pos[order], line.x_pos[order])


def bin_line(positions: np.ndarray, values: np.ndarray, pixel_x: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the samples in each pixel (pixels centred on `pixel_x`, evenly spaced) and
    the number of samples in it; NaN where a pixel got none."""
    step = pixel_x[1] - pixel_x[0] if pixel_x.size > 1 else 1.0
    index = np.floor((positions - pixel_x[0]) / step + 0.5).astype(np.int64)
    inside = (index >= 0) & (index < pixel_x.size) & np.isfinite(values)
    counts = np.bincount(index[inside], minlength=pixel_x.size)
    sums = np.bincount(index[inside], weights=values[inside], minlength=pixel_x.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means, counts


def _pair_mismatch(a: LineStreams, b: LineStreams, lag: float) -> tuple[float, int]:
    """Sum of squared differences between line a's samples and line b interpolated to the
    same positions, over their overlap; and the number of samples compared."""
    xa = sample_positions(a, lag)
    xb = sample_positions(b, lag)
    order = np.argsort(xb)
    xb, vb = xb[order], b.bz[order]
    keep = (xa > xb[0]) & (xa < xb[-1])
    if np.count_nonzero(keep) < 2:
        return 0.0, 0
    diff = a.bz[keep] - np.interp(xa[keep], xb, vb)
    return float(diff @ diff), int(np.count_nonzero(keep))


def lag_mismatch(lines: Sequence[LineStreams], lag: float) -> float:
    """Mean squared difference between every pair of adjacent lines run in opposite
    directions, their samples placed with `lag`. Pairs (i, i+1) and (i+1, i+2) have their
    y offsets in opposite senses relative to the direction, so a y gradient biases them
    oppositely and cancels to first order."""
    total, count = 0.0, 0
    for a, b in itertools.pairwise(lines):
        if a.forward == b.forward:
            continue
        s, n = _pair_mismatch(a, b, lag)
        total += s
        count += n
    return total / count if count else float("nan")


def refine_lag(lines: Sequence[LineStreams], guess: float, span: float) -> float:
    """The lag in [guess − span, guess + span] that makes adjacent opposite lines agree best.

    A coarse search over `LAG_GRID` lags, then a bounded scalar minimisation around the best;
    `guess` itself where no lag in the span gives opposite lines samples to compare (a line's
    samples all placed at one end of it). ValueError when no two adjacent lines run in opposite
    directions.
    """
    from scipy.optimize import minimize_scalar

    if not any(a.forward != b.forward for a, b in itertools.pairwise(lines)):
        raise ValueError("refining the lag needs adjacent lines run in opposite directions")
    lo, hi = guess - span, guess + span
    grid = np.linspace(lo, hi, LAG_GRID)
    costs = np.array([lag_mismatch(lines, lag) for lag in grid])
    if np.isnan(costs).all():
        return guess
    best = int(np.nanargmin(costs))
    width = grid[1] - grid[0]
    bounds = (max(lo, grid[best] - width), min(hi, grid[best] + width))
    found = minimize_scalar(lambda lag: lag_mismatch(lines, lag), bounds=bounds,
                            method="bounded", options={"xatol": 1e-4 * width})
    return float(found.x)


def pole_response(n: int, time_constant: float, dt: float) -> np.ndarray:
    """The n-pole low-pass filter's impulse response sampled every dt, summing to 1
    (a gamma density of shape n and scale τ), long enough to hold all but 1e-6 of it."""
    from scipy.stats import gamma

    length = gamma.ppf(1 - 1e-6, n, scale=time_constant)
    t = np.arange(0.0, length + dt, dt)
    h = gamma.pdf(t + dt / 2, n, scale=time_constant)
    return h / h.sum()
