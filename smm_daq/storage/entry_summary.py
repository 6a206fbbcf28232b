"""How an entry was made, in a few words for a listing: an induced entry's registration, a
scan's flight.

Two subtractions of the same scans made with other options (`--no-register`, `--rotation`,
`--apply-insignificant-shift`) carry the same title and sources; what tells them apart is
their `registration` NXprocess, which this reads back. A flown scan and a stepped one of the
same grid differ only in their stored plan.
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np

UM = 1e-6
# what a damaged dataset (a chunk that no longer decompresses: OSError, RuntimeError) or
# another program's value (an integer past float's range: OverflowError) raises on reading
_UNREADABLE = (KeyError, TypeError, ValueError, OSError, RuntimeError, OverflowError)


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
    except _UNREADABLE:
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


def flown_summary(entry: h5py.Group) -> str:
    """"flown, 0.02 s a pixel" for a scan whose stored plan flew its lines; "" for a stepped
    scan, another entry, or a plan this cannot read."""
    plan = entry.get("plan")
    if not isinstance(plan, h5py.Dataset):
        return ""
    try:
        raw = plan[()]
        fly = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw)).get("fly")
        seconds = float(fly["pixel_time_s"]) if isinstance(fly, dict) else None
    except (*_UNREADABLE, AttributeError, RecursionError):  # RecursionError: JSON nested deep
        return ""
    if seconds is None:
        return ""
    return f"flown, {seconds:g} s a pixel" if math.isfinite(seconds) else "flown"
