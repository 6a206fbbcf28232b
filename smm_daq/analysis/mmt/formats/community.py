"""Scans in the MMT community's format: a whitespace matrix of Bz (T; row j is y_j, row 0 the
lowest y) and a JSON file of scan parameters in m, as `mmt_dipole_cuboid_inversion` uses:
"Sensor center domain LL-x-y", "Sensor center domain UR-x-y", "Scan spacing",
"Scan delta-x"/"Scan delta-y" (sensor HALF-widths) and "Scan height"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

_KEYS = ("Sensor center domain LL-x-y", "Sensor center domain UR-x-y", "Scan spacing",
         "Scan height")


def _number(params: dict, key: str, source: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"key '{key}' is {value!r}; expected a finite number in m", source=source)
    return float(value)


def _pair(params: dict, key: str, source: str) -> tuple[float, float]:
    value = params.get(key)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int | float) and math.isfinite(v) for v in value)):
        raise InputError(f"key '{key}' is {value!r}; expected [x, y] in m", source=source)
    return float(value[0]), float(value[1])


def read_mmt_scan(map_path: str | Path, params_path: str | Path, *, name: str = "mmt_scan"
                  ) -> MapData:
    """The scan as MapData (T, m); InputError naming the file and key or line on bad input."""
    psrc = str(params_path)
    try:
        params = json.loads(Path(params_path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no such parameter file", source=psrc) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"is not JSON ({exc})", source=psrc) from None
    if not isinstance(params, dict):
        raise InputError("expected a JSON object of scan parameters", source=psrc)
    missing = [k for k in _KEYS if k not in params]
    if missing:
        raise InputError(f"lacks key(s) {', '.join(map(repr, missing))}", source=psrc)
    (x0, y0), (x1, y1) = _pair(params, _KEYS[0], psrc), _pair(params, _KEYS[1], psrc)
    step = _number(params, "Scan spacing", psrc)
    height = _number(params, "Scan height", psrc)
    if step <= 0 or height <= 0:
        raise InputError("'Scan spacing' and 'Scan height' must be > 0", source=psrc)
    half = [_number(params, k, psrc) if k in params else 0.0
            for k in ("Scan delta-x", "Scan delta-y")]
    if any(h < 0 for h in half):
        raise InputError("'Scan delta-x/y' must be >= 0 (sensor half-widths in m)", source=psrc)

    spans = ((x1 - x0) / step, (y1 - y0) / step)
    if any(v < 0 or abs(v - round(v)) > 1e-3 for v in spans):
        raise InputError(
            f"the corners ({x0}, {y0}) and ({x1}, {y1}) m are not a whole number of 'Scan "
            f"spacing' ({step} m) apart, lower-left first",
            source=psrc,
        )
    msrc = str(map_path)
    rows: list[list[float]] = []
    try:
        text = Path(map_path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such map file", source=msrc) from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append([float(v) for v in line.replace(",", " ").split()])
        except ValueError:
            raise InputError("holds a value that is not a number; expected Bz in T",
                             source=f"{msrc}, line {lineno}") from None
        if rows and len(rows[-1]) != len(rows[0]):
            raise InputError(f"has {len(rows[-1])} values; expected {len(rows[0])} like line 1",
                             source=f"{msrc}, line {lineno}")
    bz = np.array(rows, dtype=float)
    if bz.ndim != 2 or bz.size == 0:
        raise InputError("holds no map", source=msrc)
    ny, nx = bz.shape
    x = x0 + step * np.arange(nx)
    y = y0 + step * np.arange(ny)
    tol = 1e-3 * step
    if abs(x[-1] - x1) > tol or abs(y[-1] - y1) > tol:
        raise InputError(
            f"the map is {ny} × {nx} but {psrc} puts its corners at ({x0}, {y0}) and "
            f"({x1}, {y1}) m with spacing {step} m; expected "
            f"{round((y1 - y0) / step) + 1} × {round((x1 - x0) / step) + 1} values",
            source=msrc,
        )
    return MapData(bz=bz, x=x, y=y, height=height, sensor_size=(2 * half[0], 2 * half[1]),
                   name=name, title=f"MMT scan {Path(map_path).name}",
                   sources=(Path(map_path).name,))
