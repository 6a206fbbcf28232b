"""How an induced entry's two maps were put on each other, in a few words for a listing.

Two subtractions of the same scans made with other options (`--no-register`, `--rotation`,
`--apply-insignificant-shift`) carry the same title and sources; what tells them apart is
their `registration` NXprocess, which this reads back.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

UM = 1e-6


def registration_summary(entry: h5py.Group) -> str:
    """"not registered", "registered: shift (dx, dy) µm applied[, rotation r°]", "registered:
    shift (dx, dy) µm found, not applied" or "registered: no shift determined"; "" where the
    entry records no registration (not an induced map) or one this cannot read."""
    g = entry.get("registration")
    if not isinstance(g, h5py.Group) or "registered" not in g:
        return ""
    try:
        if not int(g["registered"][()]):
            return "not registered"
        shift = _pair(g, "shift")
        found = _pair(g, "shift_found") if "shift_found" in g else shift
        errors = _pair(g, "shift_errors") if "shift_errors" in g else (0.0, 0.0)
        rotation = float(g["rotation"][()]) if "rotation" in g else 0.0
    except (KeyError, TypeError, ValueError):
        return ""
    if not all(math.isfinite(v) for v in (*found, *errors)):
        said = "no shift determined"
    elif shift == (0.0, 0.0) and found != (0.0, 0.0):
        said = f"shift {_um(found)} found, not applied"
    else:
        said = f"shift {_um(shift)} applied"
    if rotation and math.isfinite(rotation):
        said += f", rotation {math.degrees(rotation):.3g}°"
    return f"registered: {said}"


def _pair(g: h5py.Group, key: str) -> tuple[float, float]:
    values = np.asarray(g[key][()], dtype=float).reshape(-1)
    if values.size != 2:
        raise ValueError(key)
    return float(values[0]), float(values[1])


def _um(pair: tuple[float, float]) -> str:
    return f"({pair[0] / UM:.3g}, {pair[1] / UM:.3g}) µm"
