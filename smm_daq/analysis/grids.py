"""Checks that maps can be combined pixel by pixel, with messages that name both maps."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

# A registration fits its shift (and a constant, and a rotation if asked) on at least this many
# overlapping pixels per parameter; a grid of fewer points cannot be registered at all.
MIN_PIXELS_PER_PARAMETER = 20
SHIFT_PARAMETERS = 3  # x, y shift and a constant offset
UM = 1e-6


class Gridded(Protocol):
    """Anything with a name and grid axes x (nx,) and y (ny,) in m: a map, or a scan not yet
    taken (its plan), so grids can be compared before the scan runs."""

    @property
    def name(self) -> str: ...
    @property
    def x(self) -> np.ndarray: ...
    @property
    def y(self) -> np.ndarray: ...


def _label(m: Gridded, fallback: str) -> str:
    return f"'{m.name}'" if m.name else fallback


def _step(u: np.ndarray) -> float:
    return float(u[1] - u[0]) if u.size > 1 else 0.0


def require_same_grid(a: Gridded, b: Gridded) -> None:
    """InputError unless `a` and `b` share shape and axes (to 1 % of a step)."""
    la, lb = _label(a, "the first map"), _label(b, "the second map")
    # where each grid lies, so that the scan to crop, and to where, can be seen
    grids = f" ({la}: {_extent(a)}; {lb}: {_extent(b)})"
    if (a.y.size, a.x.size) != (b.y.size, b.x.size):
        raise InputError(
            f"{la} is {a.y.size} × {a.x.size} pixels (ny × nx) but {lb} is "
            f"{b.y.size} × {b.x.size}; expected two scans on the same grid{grids}"
        )
    step = max(abs(_step(u)) for u in (a.x, a.y, b.x, b.y)) or 1.0
    for axis, ua, ub in (("x", a.x, b.x), ("y", a.y, b.y)):
        worst = float(np.max(np.abs(ua - ub))) if ua.size else 0.0
        if worst > 0.01 * step:
            raise InputError(
                f"the {axis} axes of {la} and {lb} differ by up to {worst * 1e6:.3g} µm; "
                f"expected two scans on the same grid{grids}"
            )


def _extent(m: Gridded) -> str:
    """A grid's first and last points and its step, µm: "x 100 to 1700, y ..., step 40 × 40"."""
    def axis(u: np.ndarray) -> str:
        return f"{u[0] / UM:.6g} to {u[-1] / UM:.6g}" if u.size else "no points"

    return (f"x {axis(m.x)}, y {axis(m.y)} µm, step {abs(_step(m.x)) / UM:.6g} × "
            f"{abs(_step(m.y)) / UM:.6g} µm")


def require_regular(m: MapData) -> tuple[float, float]:
    """The steps (dx, dy) in m of a map whose axes are uniform and at least 2 × 2 pixels."""
    label = _label(m, "the map")
    if m.x.size < 2 or m.y.size < 2:
        raise InputError(f"{label} has {m.shape[0]} × {m.shape[1]} pixels; expected at least 2 × 2")
    for axis, u in (("x", m.x), ("y", m.y)):
        d = np.diff(u)
        if not (np.all(d > 0) and np.ptp(d) <= 1e-3 * d.mean()):
            raise InputError(f"the {axis} axis of {label} is not uniform and increasing")
    return m.step
